"""`manage.py import_weights <model id> <file or folder>`: provide a hub model's weights on an offline machine."""
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from nnc_web.engine import hf_weights, model_store
from nnc_web.engine.reporting import UserError


class Command(BaseCommand):
    help = ("Check a weights file (.pth/.bin/.safetensors) against a model of the store and keep it for offline "
            "use. CLIP (vitb32, vitb16, vitl14): open_clip's open_clip_model.safetensors or open_clip_pytorch_model.bin "
            "of timm/vit_base_patch32_clip_224.openai, timm/vit_base_patch16_clip_224.openai or "
            "timm/vit_large_patch14_clip_224.openai on the Hugging Face hub. detr_resnet50 (facebook/detr-resnet-50) "
            "and segformer_b3 (nvidia/mit-b3): the downloaded hub folder (config.json + model.safetensors) or its "
            "model.safetensors / pytorch_model.bin alone.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("model", choices=sorted([*model_store.BACKBONES, *hf_weights.MODELS]))
        parser.add_argument("file", type=Path, help="a weights file (a folder for detr_resnet50 / segformer_b3)")

    def handle(self, *args, **options) -> None:
        source, model = options["file"], options["model"]
        hub_model = model in hf_weights.MODELS
        if not (source.is_file() or (hub_model and source.is_dir())):
            raise CommandError(f"{source} does not exist")
        try:
            target = (hf_weights.import_hf_weights(model, source) if hub_model
                      else model_store.import_weights(model, source))
        except UserError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"{model}: weights checked and stored in {target}")
