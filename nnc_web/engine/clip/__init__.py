"""CLIP (Radford et al., 2021) through open_clip: zero-shot classification (NNC's clip_zero_shot plugin)
and the image tower as a transfer-learning backbone of the model store (a linear probe).

open_clip is imported inside functions: the plugin catalog imports this package when Django starts."""
