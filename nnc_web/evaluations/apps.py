from django.apps import AppConfig


class EvaluationsConfig(AppConfig):
    name = "nnc_web.evaluations"
    label = "evaluations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from nnc_web.evaluations.services import record_outputs
        from nnc_web.evaluations.workspace import resolve_postprocess
        from nnc_web.plugins.context import register_recorder, register_resolver

        register_resolver("postprocess", resolve_postprocess)
        register_recorder("postprocess", record_outputs)
