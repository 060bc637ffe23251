"""Render benchmark: batched stimuli_builder renderer vs lucent render_vis (one unit, batch 10).

Usage (GPU):  python bench/builder/bench_render.py --steps 50
      (CPU):  python bench/builder/bench_render.py --steps 3 --groups 4
Both use lucent's InceptionV1 with random weights, canvas 256, the paper's transforms and
objective (channel -/+ 100 * diversity). Writes bench/out/render.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import torch

from stimuli_builder.config import RenderConfig
from stimuli_builder.featurevis import RenderTarget, choose_groups_per_batch, render_batch
from stimuli_builder.nets import count_forward_hooks, load_model
from stimuli_builder.presets import paper_exp1


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def lucent_baseline(net, steps: int) -> dict[str, float]:
    """lucent render_vis, one unit (mixed4b:465 -> pool branch conv, channel 17), batch 10."""
    from lucent.optvis import objectives, param, render, transform

    layer, ch = "mixed4b_pool_reduce_pre_relu_conv", 17
    obj = objectives.channel(layer, ch) - 1e2 * objectives.diversity(layer)
    tfs = [
        transform.jitter(16),
        transform.random_scale([1, 0.975, 1.025, 0.95, 1.05]),
        transform.random_rotate(list(range(-5, 6))),
        transform.jitter(8),
    ]
    net.model.requires_grad_(False)
    if net.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()

    def run(n: int) -> None:
        render.render_vis(
            net.model,
            obj,
            lambda: param.image(256, batch=10),
            transforms=tfs,
            thresholds=(n,),
            show_image=False,
            progress=False,
        )

    run(1)  # warm-up
    sync(net.device)
    t = time.perf_counter()
    run(steps)
    sync(net.device)
    sec = (time.perf_counter() - t) / steps
    leaked = count_forward_hooks(net.model)
    for m in net.model.modules():  # lucent issue 45: render_vis never removes its hooks
        m._forward_hooks.clear()
    out = {
        "ms_per_step": 1e3 * sec,
        "image_steps_per_s": 10 / sec,
        "leaked_hooks_after_2_calls": leaked,
    }
    if net.device.type == "cuda":
        out["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--groups", type=int, default=0, help="groups per batch; 0 = from free memory")
    ap.add_argument("--precision", default="fp32")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    net = load_model("inceptionv1", "random", device, seed=0)
    result: dict[str, object] = {
        "device": torch.cuda.get_device_name()
        if device.type == "cuda"
        else f"cpu x{os.cpu_count()}",
        "steps": args.steps,
        "torch": torch.__version__,
    }
    result["lucent_render_vis_batch10"] = lucent_baseline(net, args.steps)
    cfg = RenderConfig(steps=args.steps, groups_per_batch=args.groups, precision=args.precision)
    # like for like with the baseline: every group targets a mixed4b unit (the forward pass
    # stops after mixed4b for both); a batch of shallower units would run faster.
    units = [u for u in paper_exp1() if "main" in u.roles and u.layer == "mixed4b"]
    targets = [
        RenderTarget(f"{u.layer}:{u.channel}", u.layer, u.channel, s)
        for u in units
        for s in (1, -1)
    ]
    groups = choose_groups_per_batch(net, targets, cfg, seed=0)
    batch = (
        targets[:groups]
        if groups <= len(targets)
        else (targets * (groups // len(targets) + 1))[:groups]
    )
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    render_batch(net, batch, cfg, seed=0, steps=1)  # warm-up
    sync(device)
    t = time.perf_counter()
    render_batch(net, batch, cfg, seed=0)
    sync(device)
    sec = (time.perf_counter() - t) / args.steps
    ours = {
        "groups": len(batch),
        "images": len(batch) * cfg.n_images,
        "ms_per_step": 1e3 * sec,
        "image_steps_per_s": len(batch) * cfg.n_images / sec,
        "hooks_left": count_forward_hooks(net.model),
        "layers_in_batch": sorted({t.layer for t in batch}),
    }
    if device.type == "cuda":
        ours["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
    result["ours_batched"] = ours
    base = result["lucent_render_vis_batch10"]["image_steps_per_s"]  # type: ignore[index]
    result["speedup"] = ours["image_steps_per_s"] / base
    Path("bench/out").mkdir(parents=True, exist_ok=True)
    Path("bench/out/render.json").write_text(json.dumps(result, indent=1))
    sys.stdout.write(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
