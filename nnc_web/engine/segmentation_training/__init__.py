"""Training, evaluation and bundles of the offline semantic segmenter (LR-ASPP on EfficientNet-Lite0)."""
