"""`manage.py import_weights <model id> <file>`: provide a hub model's weights on an offline machine."""
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from nnc_web.engine import model_store
from nnc_web.engine.reporting import UserError


class Command(BaseCommand):
    help = ("Check a weights file (.pth/.bin/.safetensors) against a model of the store and keep it for offline "
            "use. CLIP (vitb32, vitb16, vitl14): open_clip's open_clip_model.safetensors or open_clip_pytorch_model.bin "
            "of timm/vit_base_patch32_clip_224.openai, timm/vit_base_patch16_clip_224.openai or "
            "timm/vit_large_patch14_clip_224.openai on the Hugging Face hub.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("model", choices=sorted(model_store.BACKBONES))
        parser.add_argument("file", type=Path)

    def handle(self, *args, **options) -> None:
        if not options["file"].is_file():
            raise CommandError(f"{options['file']} does not exist")
        try:
            target = model_store.import_weights(options["model"], options["file"])
        except UserError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"{options['model']}: weights checked and stored in {target}")
