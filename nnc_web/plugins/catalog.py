"""Import every plugin module once so the registry is complete."""
from nnc_web.plugins import (  # noqa: F401
    anomaly,
    anomaly_dataset,
    builtin_algorithms,
    clip_zero_shot,
    cross_tabulation,
    csv_dataset,
    easymaker,
    evaluation,
    face_evaluation,
    image_classification,
    lime_tabular,
    object_detection,
    parameter_stats,
    scatter_plot,
    shap_tabular,
    tabular,
    tabular_mlp,
    tile_images,
    transfer_learning,
    tsne,
)
from nnc_web.plugins.registry import PLUGINS, get  # noqa: F401
