"""Training: classification datasets, the transfer-learning model, the trainer, evaluation, bundles."""
