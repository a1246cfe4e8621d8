from django.apps import AppConfig


class DatasetsConfig(AppConfig):
    name = "nnc_web.datasets"
    label = "datasets"
    default_auto_field = "django.db.models.BigAutoField"
