"""The model store: offline EfficientNet-Lite0 weights predict real photos; hub entries explain
how to provide their weights; imported weights are checked and kept as safetensors."""
from __future__ import annotations

import pytest
import torch

from nnc_web.engine import model_store
from nnc_web.engine.reporting import UserError
from tests.sample_data import photo


@pytest.fixture(scope="module")
def lite0():
    return model_store.load_backbone("efficientnet_lite0")


def top1(model, name: str) -> int:
    batch = model_store.preprocess("efficientnet_lite0")(photo(name)).unsqueeze(0)
    with torch.no_grad():
        return int(model(batch).argmax())


def test_offline_efficientnet_lite0_knows_cats_and_espresso(lite0):
    assert 281 <= top1(lite0, "chelsea") <= 285
    assert top1(lite0, "coffee") == 967


def test_key_map_places_every_packaged_tensor():
    assert model_store.lite0_key_map("_blocks.0._depthwise_conv.weight") == "blocks.0.0.conv_dw.weight"
    assert model_store.lite0_key_map("_blocks.3._expand_conv.weight") == "blocks.2.0.conv_pw.weight"
    assert model_store.lite0_key_map("_blocks.15._bn2.bias") == "blocks.6.0.bn3.bias"
    assert model_store.lite0_key_map("_fc.weight") == "classifier.weight"


def test_hub_models_say_how_to_get_their_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("NNC_MODEL_DIR", str(tmp_path))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.delenv("NNC_ALLOW_DOWNLOADS", raising=False)
    assert not model_store.is_available("resnet18")
    with pytest.raises(model_store.ModelUnavailable, match="import_weights resnet18"):
        model_store.load_backbone("resnet18")


def test_hub_dir_is_torch_hubs_with_or_without_torch_loaded(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    assert model_store.hub_dir() == tmp_path / "th" / "hub" == model_store.Path(torch.hub.get_dir())
    monkeypatch.delitem(model_store.sys.modules, "torch")  # the web side: torch never imported
    assert model_store.hub_dir() == tmp_path / "th" / "hub"
    monkeypatch.delenv("TORCH_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert model_store.hub_dir() == tmp_path / "cache" / "torch" / "hub"


def test_imported_weights_are_checked_then_used(tmp_path, monkeypatch):
    monkeypatch.setenv("NNC_MODEL_DIR", str(tmp_path / "models"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    import torchvision

    reference = torchvision.models.resnet18(weights=None)
    torch.save(reference.state_dict(), tmp_path / "resnet18.pth")
    model_store.import_weights("resnet18", tmp_path / "resnet18.pth")
    assert model_store.is_available("resnet18")
    loaded = model_store.load_backbone("resnet18")
    assert torch.equal(loaded.conv1.weight, reference.conv1.weight)
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "wrong.pth")
    with pytest.raises(UserError, match="does not fit resnet18"):
        model_store.import_weights("resnet18", tmp_path / "wrong.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a weights file")
    with pytest.raises(UserError, match="not a PyTorch or safetensors"):
        model_store.import_weights("resnet18", tmp_path / "junk.pth")


@pytest.mark.django_db
def test_import_weights_command_and_models_api(tmp_path, monkeypatch, alice, client_for):
    import torchvision
    from django.core.management import CommandError, call_command

    monkeypatch.setenv("NNC_MODEL_DIR", str(tmp_path / "models"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    from huggingface_hub import constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hf"))  # no cached CLIP here
    listed = {m["id"]: m["available"] for m in client_for(alice).get("/api/models/").json()["results"]}
    assert listed == {"efficientnet_lite0": True, "resnet18": False, "resnet50": False, "wide_resnet50_2": False,
                      "vitb32": False, "vitb16": False, "vitl14": False, "detr_resnet50": False,
                      "segformer_b3": False}
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), tmp_path / "r18.pth")
    call_command("import_weights", "resnet18", str(tmp_path / "r18.pth"))
    assert client_for(alice).get("/api/models/").json()["results"][1] == {
        "id": "resnet18", "title": "ResNet-18 (ImageNet)", "available": True, "input_size": 224}
    with pytest.raises(CommandError, match="does not fit resnet50"):
        call_command("import_weights", "resnet50", str(tmp_path / "r18.pth"))
