"""Training, evaluation and bundles of the offline object detector (CenterNet on EfficientNet-Lite0)."""
