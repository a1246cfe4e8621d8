"""Import every plugin module once so the registry is complete."""
from nnc_web.plugins import easymaker, image_classification, object_detection, tabular  # noqa: F401
from nnc_web.plugins.registry import PLUGINS, get  # noqa: F401
