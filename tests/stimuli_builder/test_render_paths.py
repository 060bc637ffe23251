"""The fast render paths (channels_last, bf16 Gram products, transforms in bf16, compile)
against the previous path (contiguous NCHW, fp32): same arithmetic up to rounding.

Tolerances (docs/builder.md): Adam's first steps are close to ``lr * sign(gradient)``, so
rounding noise in near-zero gradient entries flips single spectrum coefficients. After one step
the layouts agree to 1e-3 per pixel; after three steps the mean absolute pixel difference stays
below 0.02 (fp32, measured 0.008 on the CPU) and 0.05 with bf16 Gram products or transforms
(measured 0.02). Runs on the CPU, and on CUDA when present.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from stimuli_builder.config import RenderConfig
from stimuli_builder.featurevis import (
    PaperTransforms,
    RenderTarget,
    _warp_reduced,
    diversity_similarity,
    render_batch,
    render_memory_format,
)
from stimuli_builder.nets import Net, count_forward_hooks, load_model

DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=[
            pytest.mark.gpu,
            pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
        ],
    ),
]
TARGETS = [
    RenderTarget("mixed4b:465", "mixed4b", 465, 1),
    RenderTarget("mixed4b:465", "mixed4b", 465, -1),
    RenderTarget("mixed3a:25", "mixed3a", 25, 1),
]
_NETS: dict[str, Net] = {}


def _net(device: str) -> Net:
    if device not in _NETS:
        _NETS[device] = load_model("inceptionv1", "random", torch.device(device), seed=0)
    return _NETS[device]


def _render(device: str, steps: int, **kw: Any) -> list[np.ndarray]:
    base: dict[str, Any] = {
        "n_images": 3,
        "canvas_px": 64,
        "keep_px": 56,
        "jitter1_px": 4,
        "jitter2_px": 2,
        "steps": steps,
    }
    net = _net(device)
    results = render_batch(net, TARGETS, RenderConfig(**(base | kw)), seed=1)
    assert count_forward_hooks(net.model) == 0
    return [r.images for r in results]


def _diff(a: list[np.ndarray], b: list[np.ndarray]) -> tuple[float, float]:
    d = [np.abs(x - y) for x, y in zip(a, b, strict=True)]
    return max(float(x.max()) for x in d), float(np.mean([x.mean() for x in d]))


def test_auto_layout_is_channels_last_on_cuda_only() -> None:
    cfg = RenderConfig()
    assert render_memory_format(cfg, torch.device("cpu")) == torch.contiguous_format
    assert render_memory_format(cfg, torch.device("cuda")) == torch.channels_last
    forced = RenderConfig(memory_format="channels_last")
    assert render_memory_format(forced, torch.device("cpu")) == torch.channels_last


@pytest.mark.parametrize("device", DEVICES)
def test_channels_last_render_matches_the_contiguous_render(device: str) -> None:
    for steps, max_tol, mean_tol in ((1, 1e-3, 1e-4), (3, 1.0, 0.02)):
        old = _render(device, steps, memory_format="contiguous")
        new = _render(device, steps, memory_format="channels_last")
        worst, mean = _diff(new, old)
        assert worst <= max_tol and mean <= mean_tol, (steps, worst, mean)
    _net(device).model.to(memory_format=torch.contiguous_format)


@pytest.mark.parametrize("device", DEVICES)
def test_bf16_grams_and_transforms_stay_close_to_the_previous_path(device: str) -> None:
    fp32 = _render(device, 3, memory_format="contiguous")
    grams = _render(device, 3, memory_format="channels_last", gram_precision="bf16")
    assert _diff(grams, fp32)[1] <= 0.05
    bf16_old = _render(device, 3, memory_format="contiguous", precision="bf16")
    bf16_new = _render(
        device,
        3,
        memory_format="channels_last",
        precision="bf16",
        transform_precision="model",
        gram_precision="bf16",
    )
    assert _diff(bf16_new, bf16_old)[1] <= 0.05
    for images in (grams, bf16_new):
        assert all(np.isfinite(x).all() and x.dtype == np.float32 for x in images)
    _net(device).model.to(memory_format=torch.contiguous_format)


@pytest.mark.parametrize("route", ["grams", "positions"])
def test_diversity_reads_either_layout_and_bf16_grams_are_close(route: str) -> None:
    torch.manual_seed(0)
    # grams: C*C <= n*hw*hw (C x C Gram matrices); positions: the hw x hw route
    c, hw = (16, 8) if route == "grams" else (256, 4)
    flat = torch.randn(6, c, hw, hw) + 0.5
    cl = flat.contiguous(memory_format=torch.channels_last).requires_grad_(True)
    nchw = flat.clone().requires_grad_(True)
    a = diversity_similarity(nchw.reshape(2, 3, c, hw, hw))
    b = diversity_similarity(cl.reshape(2, 3, c, hw, hw))
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    (ga,) = torch.autograd.grad(a.sum(), nchw)
    (gb,) = torch.autograd.grad(b.sum(), cl)
    torch.testing.assert_close(ga, gb, rtol=1e-4, atol=1e-6)
    low = diversity_similarity(cl.reshape(2, 3, c, hw, hw), torch.bfloat16)
    assert low.dtype == torch.float32
    torch.testing.assert_close(low, a, rtol=2e-2, atol=2e-2)


def test_bf16_transforms_follow_kornias_fp32_transforms() -> None:
    import kornia

    x = torch.rand(2, 3, 20, 24)
    cfg = RenderConfig(canvas_px=32, keep_px=24, jitter1_px=4, jitter2_px=2)
    angle, center = torch.full((2,), 4.0), torch.tensor([[11.5, 9.5]] * 2)
    m = kornia.get_rotation_matrix2d(center, angle, torch.ones(2, 2))
    ref = kornia.warp_affine(x, m, dsize=(20, 24))
    torch.testing.assert_close(_warp_reduced(x, m), ref, rtol=1e-5, atol=1e-5)
    low = _warp_reduced(x.bfloat16(), m)
    assert low.dtype == torch.bfloat16
    torch.testing.assert_close(low.float(), ref, rtol=0, atol=1e-2)
    from kornia.geometry.transform import translate

    shift = torch.tensor([[3.0, 1.0]] * 2)
    m_shift = torch.tensor([[[1.0, 0.0, 3.0], [0.0, 1.0, 1.0]]] * 2)
    torch.testing.assert_close(_warp_reduced(x, m_shift), translate(x, shift), rtol=0, atol=1e-5)
    # the whole transform chain in bf16 follows the fp32 chain's draws
    a = PaperTransforms(cfg, np.random.RandomState(5))(x)
    b = PaperTransforms(cfg, np.random.RandomState(5))(x.bfloat16())
    assert b.dtype == torch.bfloat16 and b.shape == a.shape
    assert float((b.float() - a).abs().mean()) < 1e-2


def test_compiled_image_parameterisation_renders_like_eager() -> None:
    pytest.importorskip("torch._inductor")
    eager = _render("cpu", 2, memory_format="contiguous")
    compiled = _render("cpu", 2, memory_format="contiguous", compile=True)
    worst, mean = _diff(compiled, eager)
    assert mean <= 0.02, (worst, mean)
