"""Names of the trained-model kinds whose code needs torch, kept apart from that code: the plugins register
their evaluators under these names and name their weights on import, in the web processes too, which
must not load torch (tests/test_light_web.py)."""

CENTERNET_DETECTOR = "centernet_detector"  # a bundle manifest's `architecture`
DETR_DETECTOR = "detr_detector"
LRASPP_SEGMENTER = "lraspp_segmenter"
SEGFORMER_SEGMENTER = "segformer_segmenter"

DENSE_BACKBONE = "efficientnet_lite0"  # the offline detector's and segmenter's pretrained backbone
DETR_MODEL_ID = "detr_resnet50"  # engine.hf_weights.MODELS ids
SEGFORMER_MODEL_ID = "segformer_b3"
