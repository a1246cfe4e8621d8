"""Import every plugin module once so the registry is complete."""
from nnc_web.plugins import (  # noqa: F401
    anomaly,
    anomaly_dataset,
    builtin_algorithms,
    easymaker,
    evaluation,
    image_classification,
    object_detection,
    tabular,
    tabular_mlp,
    transfer_learning,
)
from nnc_web.plugins.registry import PLUGINS, get  # noqa: F401
