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
from stimuli_builder.nets import count_forward_hooks, load_model, use_fast_layers, use_lucent_layers
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


def ours(net, cfg: RenderConfig, targets: list[RenderTarget], steps: int) -> dict[str, object]:
    """Our batched renderer: groups from free memory (or --groups), image-steps per second."""
    device = net.device
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
    render_batch(net, batch, cfg, seed=0, steps=steps)
    sync(device)
    sec = (time.perf_counter() - t) / steps
    out: dict[str, object] = {
        "groups": len(batch),
        "images": len(batch) * cfg.n_images,
        "ms_per_step": 1e3 * sec,
        "image_steps_per_s": len(batch) * cfg.n_images / sec,
        "hooks_left": count_forward_hooks(net.model),
        "layers_in_batch": sorted({t.layer for t in batch}),
    }
    if device.type == "cuda":
        out["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return out


FLAGS = {
    "nchw": {"memory_format": "contiguous"},
    "cl": {"memory_format": "channels_last"},
    "g16": {"gram_precision": "bf16"},
    "tm": {"transform_precision": "model"},
    "compile": {"compile": True},
}


def variant_options(flags: str) -> dict[str, object]:
    """``cl+g16+tm`` -> RenderConfig keyword arguments (see FLAGS); empty = config defaults."""
    out: dict[str, object] = {}
    for flag in filter(None, flags.split("+")):
        out.update(FLAGS[flag])
    return out


def profile_steps(
    net, cfg: RenderConfig, targets: list[RenderTarget], path: Path
) -> dict[str, float]:
    """torch.profiler table of 3 render steps (the kernels that take the time); returns the
    share of device (CPU without CUDA) time spent in aten::copy_ and its call count."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU]
    if net.device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    render_batch(net, targets, cfg, seed=0, steps=1)
    with profile(activities=activities) as prof:
        render_batch(net, targets, cfg, seed=0, steps=3)
        sync(net.device)
    keys = ["self_device_time_total", "self_cuda_time_total"] if net.device.type == "cuda" else []
    averages = prof.key_averages()
    for key in [*keys, "self_cpu_time_total"]:
        try:
            path.write_text(averages.table(sort_by=key, row_limit=25))
        except (AttributeError, KeyError, ValueError):
            continue
        total = sum(getattr(e, key) for e in averages if getattr(e, key, None) is not None)
        copies = [e for e in averages if e.key == "aten::copy_"]
        copy_time = sum(getattr(e, key) for e in copies)
        return {
            "time_key": key,  # type: ignore[dict-item]
            "copy_share": copy_time / total if total else 0.0,
            "copy_calls_per_step": sum(e.count for e in copies) / 3,
        }
    return {}


def save(path: Path, result: dict[str, object]) -> None:
    """Write the results so far."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--groups", type=int, default=0, help="groups per batch; 0 = from free memory")
    ap.add_argument(
        "--variants",
        default="fp32:fast",
        help="comma-separated precision:layers[:flags] of our renderer (layers: fast = "
        "band-matrix LRN and mask-free RedirectedReLU, lucent = lucent's own; flags joined by +: "
        "nchw|cl (memory format), g16 (bf16 Gram), tm (transforms in the model's dtype), "
        "compile), e.g. fp32:fast:nchw,bf16:fast:cl+g16+tm,fp32:lucent",
    )
    ap.add_argument("--profile", type=Path, help="write a kernel profile of 3 steps here")
    ap.add_argument(
        "--profile-variants",
        default="fp32:fast:nchw",
        help="variants profiled with --profile (one table each: PATH.<variant>.txt)",
    )
    ap.add_argument(
        "--json",
        type=Path,
        default=Path("bench/out/render.json"),
        help="results, rewritten after every measurement (a time limit keeps what was done)",
    )
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
    # The baseline is lucent as shipped: its own layers (avg_pool3d LRN, masked RedirectedReLU)
    # and render_vis.
    use_lucent_layers(net.model)
    result["lucent_render_vis_batch10"] = lucent_baseline(net, args.steps)
    base = result["lucent_render_vis_batch10"]["image_steps_per_s"]  # type: ignore[index]
    # like for like with the baseline: every group targets a mixed4b unit (the forward pass
    # stops after mixed4b for both); a batch of shallower units would run faster.
    units = [u for u in paper_exp1() if "main" in u.roles and u.layer == "mixed4b"]
    targets = [
        RenderTarget(f"{u.layer}:{u.channel}", u.layer, u.channel, s)
        for u in units
        for s in (1, -1)
    ]
    for variant in args.variants.split(","):
        precision, layers, *rest = variant.split(":")
        (use_fast_layers if layers == "fast" else use_lucent_layers)(net.model)
        options = variant_options(rest[0] if rest else "")
        cfg = RenderConfig(
            steps=args.steps, groups_per_batch=args.groups, precision=precision, **options
        )
        try:
            entry = ours(net, cfg, targets, args.steps)
        except Exception as exc:  # noqa: BLE001 - one failing option must not hide the others
            logging.exception("variant %s failed", variant)
            result[f"ours_{variant}"] = {"error": repr(exc)}
            save(args.json, result)
            continue
        entry["speedup"] = entry["image_steps_per_s"] / base  # type: ignore[operator]
        entry["options"] = options
        result[f"ours_{variant}"] = entry
        logging.info("%s: %s", variant, entry)
        save(args.json, result)
    if args.profile:
        use_fast_layers(net.model)
        profiles = {}
        for variant in args.profile_variants.split(","):
            precision, _layers, *rest = variant.split(":")
            cfg = RenderConfig(
                steps=3,
                groups_per_batch=16 if device.type == "cuda" else 1,
                precision=precision,
                **variant_options(rest[0] if rest else ""),
            )
            path = args.profile.with_suffix(f".{variant.replace(':', '_')}.txt")
            profiles[variant] = profile_steps(
                net, cfg, targets[:16] if device.type == "cuda" else targets[:1], path
            )
        result["profile"] = profiles
    save(args.json, result)
    sys.stdout.write(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
