"""Evaluation results, post-processing runs and endpoints arrive with the training issue."""
