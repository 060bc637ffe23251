"""Smoke test on lucent's InceptionV1 (random weights): pre-ReLU branch layers, scan, render."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_image_folder

from stimuli_builder.config import RenderConfig, build_config
from stimuli_builder.errors import ModelError
from stimuli_builder.featurevis import RenderTarget, render_batch
from stimuli_builder.nets import (
    band_local_response_norm,
    count_forward_hooks,
    load_model,
    run_capture,
    use_lucent_layers,
)
from stimuli_builder.pipeline import run_scan, step_hashes
from stimuli_builder.scan import load_scan


@pytest.fixture(scope="module")
def inception() -> object:
    return load_model("inceptionv1", "random", torch.device("cpu"), seed=0)


def test_layers_are_pre_relu_branch_concatenations(inception: object) -> None:
    net = inception
    assert net.layer_channels("mixed4b") == (160, 224, 64, 64)  # type: ignore[attr-defined]
    assert net.check_unit("mixed4b", 465) == "pool"  # type: ignore[attr-defined]
    assert net.check_unit("mixed3a", 25) == "1x1"  # type: ignore[attr-defined]
    with pytest.raises(ModelError, match=r"out of range .*\(0\.\.255\)"):
        net.check_unit("mixed3a", 256)  # type: ignore[attr-defined]
    with pytest.raises(ModelError, match=r"did you mean mixed4\w, mixed4\w"):
        net.layer_spec("mixed4x")  # type: ignore[attr-defined]
    x = torch.rand(1, 3, 64, 64)
    outs = run_capture(net.model, ["mixed3a_pool_reduce_pre_relu_conv"], net.input_transform_f(x))  # type: ignore[attr-defined]
    assert (outs["mixed3a_pool_reduce_pre_relu_conv"] < 0).any()  # pre-ReLU values
    assert count_forward_hooks(net.model) == 0  # type: ignore[attr-defined]


def test_scan_and_render_run_on_inceptionv1(inception: object, tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "imgs", 3)
    cfg = build_config(
        {
            "device": "cpu",
            "work_dir": str(tmp_path / "w"),
            "model": {"weights": "random"},
            "data": {"root": str(root)},
            "units": [{"layer": "mixed3a", "channel": 227}, {"layer": "mixed4a", "channel": 501}],
            "scan": {"batch_size": 3},
        }
    )
    run_scan(cfg, net=inception, progress=False)  # type: ignore[arg-type]
    table = load_scan(cfg.work_dir / "scan", step_hashes(cfg)["scan"])
    assert table.mean["mixed4a"].shape == (3, 508)
    assert np.isfinite(table.mean["mixed3a"]).all()
    rcfg = RenderConfig(n_images=2, canvas_px=64, keep_px=56, steps=2, jitter1_px=4, jitter2_px=2)
    res = render_batch(inception, [RenderTarget("mixed4a:501", "mixed4a", 501, 1)], rcfg, seed=0)  # type: ignore[arg-type]
    assert res[0].images.shape == (2, 3, 56, 56)
    assert count_forward_hooks(inception.model) == 0  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("size", "alpha", "beta", "k"), [(9, 1e-4, 0.5, 1.0), (4, 2e-3, 0.75, 2.0)]
)
def test_band_lrn_equals_torch_local_response_norm(
    size: int, alpha: float, beta: float, k: float
) -> None:
    x = torch.randn(2, 19, 7, 5) * 30
    expected = torch.nn.functional.local_response_norm(x, size, alpha, beta, k)
    torch.testing.assert_close(band_local_response_norm(x, size, alpha, beta, k), expected)


def test_inceptionv1_fast_layers_equal_lucents_forward_and_gradient() -> None:
    net = load_model("inceptionv1", "random", torch.device("cpu"), seed=0)
    model = net.model.double()
    x = torch.rand(1, 3, 224, 224, dtype=torch.float64)
    fast_in = x.clone().requires_grad_(True)
    fast = model(net.input_transform_f(fast_in))
    fast.sum().backward()
    use_lucent_layers(model)
    slow_in = x.clone().requires_grad_(True)
    slow = model(net.input_transform_f(slow_in))
    slow.sum().backward()
    torch.testing.assert_close(fast, slow)
    torch.testing.assert_close(fast_in.grad, slow_in.grad)
