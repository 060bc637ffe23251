"""The CUDA paths agree with the CPU: nvJPEG decoding and on-device preprocessing, bf16 scans,
batched rendering, memory-based batch sizes, and a whole build.

Skipped without a CUDA device (CI has none); run on a GPU machine with
``pytest tests/stimuli_builder/test_cuda.py -m gpu --confcutdir=tests/stimuli_builder``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import TINY_MODEL

from stimuli_builder.config import RenderConfig, build_config
from stimuli_builder.featurevis import RenderTarget, choose_groups_per_batch, render_batch
from stimuli_builder.nets import count_forward_hooks, load_model
from stimuli_builder.pipeline import run_build, run_scan, step_hashes
from stimuli_builder.scan import ScanTable, load_scan, ranking_agreement

# PSYCHVIS_GPU_TEST_DEVICE=cpu runs these on the CPU (a dry run of the tests themselves).
GPU = os.environ.get("PSYCHVIS_GPU_TEST_DEVICE", "cuda")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        GPU == "cuda" and not torch.cuda.is_available(), reason="needs a CUDA device"
    ),
]
CUDA = torch.device(GPU)


def _scan(make: Callable[..., Any], tmp: Path, device: str, **scan: Any) -> ScanTable:
    base = {"batch_size": 8, "chunk_size": 16, "resize_px": 40, "crop_px": 32}
    cfg = build_config(make(device=device, work_dir=str(tmp / f"work-{device}"), scan=base | scan))
    run_scan(cfg, progress=False)
    return load_scan(cfg.work_dir / "scan", step_hashes(cfg)["scan"])


@pytest.mark.parametrize("decoder", ["pil", "torch"])
def test_cuda_scan_ranks_images_like_the_cpu_scan(
    tiny_config: Callable[..., Any], tmp_path: Path, decoder: str
) -> None:
    cpu = _scan(tiny_config, tmp_path, "cpu", decoder="pil")
    gpu = _scan(tiny_config, tmp_path / decoder, GPU, decoder=decoder)
    assert gpu.files == cpu.files
    for layer in ("conv1", "conv2"):
        if decoder == "pil":
            # Same uint8 crops; only the convolution's arithmetic (TF32/cuDNN) differs.
            np.testing.assert_allclose(gpu.mean[layer], cpu.mean[layer], rtol=2e-2, atol=2e-3)
        agreement = ranking_agreement(cpu.mean[layer], gpu.mean[layer], 12)
        # nvJPEG's IDCT and the GPU's antialiased resize move pixels by a level or two.
        floor = 0.999 if decoder == "pil" else 0.97
        assert agreement["spearman_mean"] >= floor, (layer, agreement)
        assert agreement["top_overlap_mean"] >= floor - 0.2, (layer, agreement)


def test_cuda_bf16_scan_reports_high_ranking_agreement(
    tiny_config: Callable[..., Any], tmp_path: Path
) -> None:
    cfg = build_config(
        tiny_config(
            device=GPU,
            scan={
                "batch_size": 8,
                "chunk_size": 16,
                "resize_px": 40,
                "crop_px": 32,
                "precision": "bf16",
                "agreement_images": 60,
            },
        )
    )
    done = run_scan(cfg, progress=False)
    for layer, agreement in done["agreement"]["layers"].items():
        assert agreement["spearman_mean"] > 0.95, (layer, agreement)


def _cfg(**kw: Any) -> RenderConfig:
    base: dict[str, Any] = {
        "n_images": 3,
        "canvas_px": 32,
        "keep_px": 28,
        "steps": 40,
        "jitter1_px": 4,
        "jitter2_px": 2,
        "diversity": 0.0,
    }
    return RenderConfig(**(base | kw))


def test_cuda_render_optimises_both_directions_and_matches_the_cpu_render() -> None:
    targets = [RenderTarget("conv2:5", "conv2", 5, 1), RenderTarget("conv2:5", "conv2", 5, -1)]
    gpu_net = load_model(TINY_MODEL, "random", CUDA, seed=0)
    start = render_batch(gpu_net, targets, _cfg(steps=1, lr=1e-9), seed=1)
    end = render_batch(gpu_net, targets, _cfg(), seed=1)
    for s, e in zip(start, end, strict=True):
        assert e.objectives.mean() > s.objectives.mean() + 1e-3
        assert np.isfinite(e.images).all() and e.images.shape == (3, 3, 28, 28)
    assert count_forward_hooks(gpu_net.model) == 0
    # The same seed gives the same start and transform draws on either device: after a few
    # steps the images differ only by floating-point noise.
    cpu_net = load_model(TINY_MODEL, "random", torch.device("cpu"), seed=0)
    few = _cfg(steps=3)
    on_cpu = render_batch(cpu_net, targets, few, seed=1)
    on_gpu = render_batch(gpu_net, targets, few, seed=1)
    for c, g in zip(on_cpu, on_gpu, strict=True):
        np.testing.assert_allclose(g.images, c.images, atol=2e-2)


def test_cuda_bf16_render_improves_the_objective() -> None:
    net = load_model(TINY_MODEL, "random", CUDA, seed=0)
    targets = [RenderTarget("conv2:5", "conv2", 5, 1)]
    start = render_batch(net, targets, _cfg(steps=1, lr=1e-9, precision="bf16"), seed=2)
    end = render_batch(net, targets, _cfg(precision="bf16"), seed=2)
    assert end[0].objectives.mean() > start[0].objectives.mean() + 1e-3
    assert np.isfinite(end[0].images).all()


def test_groups_per_batch_are_chosen_from_free_memory_and_fit() -> None:
    net = load_model("inceptionv1", "random", CUDA, seed=0)
    cfg = RenderConfig(n_images=10, canvas_px=224, keep_px=224, steps=2, memory_fraction=0.5)
    deep = RenderTarget("mixed5b:3", "mixed5b", 3, 1)
    groups = choose_groups_per_batch(net, [deep], cfg, seed=0)
    assert groups >= 2
    # The chosen number really fits: one step with that many groups.
    results = render_batch(net, [deep] * groups, cfg, seed=0, steps=1)
    assert len(results) == groups
    assert count_forward_hooks(net.model) == 0


def test_cuda_build_selects_the_same_exemplars_as_the_cpu_build(
    tiny_config: Callable[..., Any], tmp_path: Path
) -> None:
    manifests = {}
    for device in ("cpu", GPU):
        cfg = build_config(
            tiny_config(
                device=device,
                work_dir=str(tmp_path / f"work-{device}-{len(manifests)}"),
                out_dir=str(tmp_path / f"out-{device}-{len(manifests)}"),
                scan={"batch_size": 8, "chunk_size": 16, "resize_px": 40, "crop_px": 32}
                | {"decoder": "pil"},
            )
        )
        manifests[device] = run_build(cfg, progress=False)

    def picks(manifest: dict[str, Any]) -> tuple[list[Any], list[float]]:
        """(unit, batch, role, source image, rank) of every natural exemplar; activations."""
        keys, activations = [], []
        for unit in manifest["units"]:
            for batch in unit["natural"]["batches"]:
                for role, entries in batch.items():
                    if role == "batch":
                        continue
                    for entry in entries if isinstance(entries, list) else [entries]:
                        keys.append(
                            (unit["id"], batch["batch"], role, entry["source"], entry["rank"])
                        )
                        activations.append(entry["activation"])
        return keys, activations

    cpu_keys, cpu_acts = picks(manifests["cpu"])
    gpu_keys, gpu_acts = picks(manifests[GPU])
    assert len(cpu_keys) > 0
    # The same images in the same places; activations agree to cuDNN's summation order.
    assert gpu_keys == cpu_keys
    np.testing.assert_allclose(gpu_acts, cpu_acts, rtol=1e-4, atol=1e-5)
