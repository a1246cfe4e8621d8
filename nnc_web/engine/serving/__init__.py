"""Inference for trained models, without Django: request bodies checked and decoded, one predictor per
bundle architecture (a registry: `predictor.register_predictor`), ONNX Runtime or PyTorch chosen by
measurement, an LRU cache of loaded models, micro-batching of requests that arrive together, and the
export of a model repository for Triton / KServe. The Django app `nnc_web.serving` owns endpoints,
tokens and statistics; its serving process (`manage.py serve_models`) drives this package."""
