"""Pure Python/PyTorch/NumPy engine: data formats, shaping, datasets, learning.

Nothing here imports Django. Work reports through the small `Reporter` protocol in `reporting`.
"""
