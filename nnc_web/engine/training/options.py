"""The trainer's choices, without torch: the project's Config form lists and checks them on the web."""

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("none", "cosine", "step")
AUGMENTATIONS = ("flip", "translate", "scale", "brightness")
