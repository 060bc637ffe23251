"""The model registry: entries carry the input transform, layer naming and branch map; every
loading path (registered, torchvision, factory, weights file, pretrained) runs offline."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import TINY_MODEL
from torch import nn

from stimuli_builder import nets
from stimuli_builder.errors import ModelError
from stimuli_builder.nets import (
    BranchSpec,
    ModelEntry,
    branch_of,
    load_model,
    model_entry,
    register_model,
    registered_models,
)
from stimuli_builder.presets import INCEPTION_BRANCH_SIZES, inception_branch_of

CPU = torch.device("cpu")


class TwoBranch(nn.Module):
    """Two parallel convs whose outputs form one layer ``mix`` (3 + 5 channels)."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 3, 1)
        self.b = nn.Conv2d(3, 5, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.a(x), self.b(x)], dim=1)


@register_model("test-two-branch")
def _two_branch() -> ModelEntry:
    return ModelEntry(
        "test-two-branch",
        lambda weights, seed: (TwoBranch(), f"random(seed={seed})"),
        lambda x: x * 2 - 1,
        {"mix": (BranchSpec("left", "a", 3), BranchSpec("right", "b", 5))},
    )


def test_inceptionv1_entry_carries_the_branch_table() -> None:
    entry = model_entry("inceptionv1")
    assert "inceptionv1" in registered_models()
    for layer, sizes in INCEPTION_BRANCH_SIZES.items():
        assert [b.channels for b in entry.branches[layer]] == list(sizes)
        for channel in range(sum(sizes)):
            assert entry.branch_of(layer, channel) == inception_branch_of(layer, channel)[0]
        assert entry.branch_of(layer, sum(sizes)) is None
    assert entry.branches["mixed4b"][3].module == "mixed4b_pool_reduce_pre_relu_conv"
    assert branch_of("inceptionv1", "mixed4b", 465) == "pool"
    assert branch_of("inceptionv1", "conv2d2_pre_relu_conv", 3) is None
    assert branch_of(TINY_MODEL, "conv2", 3) is None


def test_a_registered_model_names_its_branch_layers() -> None:
    net = load_model("test-two-branch", "random", CPU, seed=4)
    spec = net.layer_spec("mix")
    assert spec.modules == ("a", "b") and spec.branch_names == ("left", "right")
    assert net.layer_channels("mix", 8) == (3, 5)
    assert net.check_unit("mix", 2) == "left" and net.check_unit("mix", 3) == "right"
    assert net.check_unit("b", 4) is None  # a module name is an unbranched layer
    assert net.weights_id == "random(seed=4)"
    torch.testing.assert_close(net.input_transform_f(torch.ones(1)), torch.ones(1))
    with pytest.raises(ValueError, match="already registered"):
        register_model("test-two-branch")(_two_branch)


def test_torchvision_models_load_with_random_weights_and_imagenet_normalisation() -> None:
    net = load_model("resnet18", "random", CPU, seed=0)
    assert net.weights_id == "random(seed=0)" and not net.entry.branches
    x = torch.full((1, 3, 1, 1), 0.485)
    assert abs(float(net.input_transform_f(x)[0, 0])) < 1e-6
    assert net.check_unit("layer3.1.conv2", 255) is None
    with pytest.raises(ModelError, match="did you mean resnet18"):
        load_model("resnet81", "random", CPU)


def test_a_weights_file_is_loaded_and_identified_by_its_hash(tmp_path: Path) -> None:
    src = load_model(TINY_MODEL, "random", CPU, seed=7)
    path = tmp_path / "tiny.pth"
    torch.save(src.model.state_dict(), path)
    net = load_model(TINY_MODEL, str(path), CPU, seed=0)
    assert net.weights_id == "sha256:" + nets.file_sha256(path)
    for p, q in zip(net.model.parameters(), src.model.parameters(), strict=True):
        torch.testing.assert_close(p, q)
    with pytest.raises(ModelError, match="does not fit"):
        load_model("test-two-branch", str(path), CPU)
    with pytest.raises(ModelError, match="does not exist"):
        load_model(TINY_MODEL, str(tmp_path / "missing.pth"), CPU)


def test_pretrained_paths_fail_offline_with_a_way_out(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    import torchvision.models as tvm

    # the package re-exports the class under the submodule's name
    lucent_inception = importlib.import_module("lucent.modelzoo.inceptionv1")

    real = lucent_inception.InceptionV1

    def offline_inception(pretrained: bool = False, progress: bool = True) -> nn.Module:
        if pretrained:
            raise OSError("no network")
        return real(pretrained=False)

    def offline_get_model(name: str, weights: object = None, **kw: object) -> nn.Module:
        raise OSError("no network")

    monkeypatch.setattr(lucent_inception, "InceptionV1", offline_inception)
    monkeypatch.setattr(tvm, "get_model", offline_get_model)
    with pytest.raises(ModelError, match="--weights FILE"):
        load_model("inceptionv1", "pretrained", CPU)
    with pytest.raises(ModelError, match="torchvision weights for resnet18"):
        load_model("resnet18", "pretrained", CPU)
    with pytest.raises(ModelError, match="no pretrained weights"):
        load_model(TINY_MODEL, "pretrained", CPU)
