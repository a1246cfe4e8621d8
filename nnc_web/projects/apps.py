from django.apps import AppConfig


class ProjectsConfig(AppConfig):
    name = "nnc_web.projects"
    label = "projects"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from nnc_web.plugins.context import register_resolver
        from nnc_web.projects.inputs import resolve_run

        register_resolver("run", resolve_run)
