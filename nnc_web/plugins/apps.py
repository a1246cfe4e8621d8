from django.apps import AppConfig


class PluginsConfig(AppConfig):
    name = "nnc_web.plugins"
    label = "plugins"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from nnc_web.plugins import catalog  # noqa: F401 - registers every plugin
