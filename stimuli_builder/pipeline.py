"""Run the builder's steps (scan, select, render, write) in order, resumable from disk.

Each step writes into ``work_dir`` through temp files and atomic renames, records the hash of
the configuration it depends on, and is skipped when its output exists with the same hash
(unless ``force``). A step refuses inputs whose hash does not match the current config.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from stimuli_builder import __version__
from stimuli_builder.config import BuildConfig, UnitSpec, stable_hash
from stimuli_builder.errors import ModelError, StepOrderError
from stimuli_builder.exemplars import Pick, select_unit
from stimuli_builder.fsutil import save_npz_atomic, write_json_atomic
from stimuli_builder.images import list_images, load_crop
from stimuli_builder.nets import Net, branch_of, file_sha256, load_model
from stimuli_builder.runtime import git_commit, package_versions, pick_device, seed_everything
from stimuli_builder.scan import load_scan, scan_folder

logger = logging.getLogger(__name__)


def _model_identity(cfg: BuildConfig) -> dict[str, Any]:
    weights = cfg.model.weights
    if weights not in ("pretrained", "random"):
        path = Path(weights)
        weights = "sha256:" + file_sha256(path) if path.is_file() else weights
    ident: dict[str, Any] = {"name": cfg.model.name, "weights": weights}
    if weights == "random":
        ident["seed"] = cfg.seed
    return ident


# Render options that only change speed, and options whose default keeps the earlier arithmetic
# (left out at their default so that renders made before they existed stay valid).
_RENDER_SPEED_ONLY = {"groups_per_batch", "memory_fraction", "enabled", "memory_format", "compile"}
_RENDER_DEFAULT_OMITTED = {"transform_precision": "fp32", "gram_precision": "fp32"}


# Scan options that only change speed (the overlapped loop gives identical results).
_SCAN_SPEED_ONLY = {"num_workers", "agreement_images", "overlap", "prefetch_batches"}


def _scan_identity(cfg: BuildConfig) -> dict[str, Any]:
    part = cfg.scan.model_dump(mode="json", exclude=_SCAN_SPEED_ONLY)
    if cfg.scan.precision == "fp32":
        del part["agreement_floor"]  # only reduced-precision scans fall back to fp32
    return part


def _render_identity(cfg: BuildConfig) -> dict[str, Any]:
    part = cfg.render.model_dump(mode="json", exclude=_RENDER_SPEED_ONLY)
    for key, default in _RENDER_DEFAULT_OMITTED.items():
        if part.get(key) == default:
            del part[key]
    return part


def step_hashes(cfg: BuildConfig) -> dict[str, str]:
    """Hashes of what each step's output depends on."""
    device_type = pick_device(cfg.device).type
    scan_part = _scan_identity(cfg)
    scan_h = stable_hash(
        {
            "model": _model_identity(cfg),
            "root": str(cfg.data.root),
            "max_images": cfg.data.max_images,
            "layers": sorted(cfg.layers()),
            "scan": scan_part,
            "device": device_type,
        }
    )
    unit_ids = [u.id for u in cfg.resolved_units()]
    select_h = stable_hash(
        {"scan": scan_h, "units": unit_ids, "select": cfg.select.model_dump(), "seed": cfg.seed}
    )
    render_h = stable_hash(
        {
            "model": _model_identity(cfg),
            "seed": cfg.seed,
            "render": _render_identity(cfg),
        }
    )
    write_h = stable_hash(
        {
            "select": select_h,
            "render": render_h if cfg.render.enabled else None,
            "config": cfg.to_jsonable(),
        }
    )
    return {"scan": scan_h, "select": select_h, "render": render_h, "write": write_h}


def load_net(cfg: BuildConfig) -> Net:
    """Load the configured model on the configured device and validate every unit.

    Raises:
        ModelError: unknown model/layer, channel out of range, unusable weights.
    """
    device = pick_device(cfg.device)
    net = load_model(cfg.model.name, cfg.model.weights, device, seed=cfg.seed)
    validate_units(net, cfg.resolved_units(), cfg.scan.crop_px)
    return net


def validate_units(net: Net, units: list[UnitSpec], probe_px: int = 224) -> None:
    """Check every unit's layer exists and its channel is in range.

    Raises:
        ModelError: naming the first bad unit.
    """
    if not units:
        raise ModelError("no units configured: set `preset` or add [[units]] to the config")
    for unit in units:
        try:
            net.check_unit(unit.layer, unit.channel)
        except ModelError as exc:
            raise ModelError(f"unit {unit.id}: {exc}") from None


def _branch(cfg: BuildConfig, unit: UnitSpec) -> str | None:
    # The model's branch map is the one place that knows it; the manifest carries it to the app.
    return branch_of(cfg.model.name, unit.layer, unit.channel)


def run_scan(
    cfg: BuildConfig,
    *,
    net: Net | None = None,
    force: bool = False,
    progress: bool = True,
    on_chunk: Any = None,
) -> dict[str, Any]:
    """Scan the image folder (resumable). Returns the scan's ``done.json`` content.

    Raises:
        ConfigError/DatasetError/ModelError: missing data root, empty folder, bad units.
    """
    from stimuli_builder.errors import ConfigError

    if cfg.data.root is None:
        raise ConfigError("data.root is not set: pass --data FOLDER or set [data] root")
    h = step_hashes(cfg)["scan"]
    scan_dir = cfg.work_dir / "scan"
    done_path = scan_dir / "done.json"
    if force and scan_dir.exists():
        shutil.rmtree(scan_dir)
    if done_path.exists() and json.loads(done_path.read_text()).get("config_hash") == h:
        logger.info("scan up to date, skipped (%s)", scan_dir)
        done: dict[str, Any] = json.loads(done_path.read_text())
        return done
    files = list_images(cfg.data.root, cfg.data.max_images)
    net = net or load_net(cfg)
    validate_units(net, cfg.resolved_units(), cfg.scan.crop_px)
    seed_everything(cfg.seed)
    stats = scan_folder(
        net,
        cfg.layers(),
        cfg.data.root,
        files,
        scan_dir,
        cfg.scan,
        h,
        progress=progress,
        on_chunk=on_chunk,
    )
    result: dict[str, Any] = json.loads(done_path.read_text())
    result["images_per_s"] = stats.images_per_s
    return result


def _pick_dict(p: Pick) -> dict[str, Any]:
    return {"index": p.index, "source": p.source, "rank": p.rank, "activation": p.activation}


def run_select(cfg: BuildConfig, *, force: bool = False) -> dict[str, Any]:
    """Exemplar selection (docs/protocol.md, Stimuli) for every unit; writes ``select/selection.json``.

    Raises:
        StepOrderError: no matching scan. DatasetError: too few images for k x batches.
    """
    hashes = step_hashes(cfg)
    out = cfg.work_dir / "select" / "selection.json"
    if not force and out.exists():
        old: dict[str, Any] = json.loads(out.read_text())
        if old.get("config_hash") == hashes["select"]:
            logger.info("selection up to date, skipped (%s)", out)
            return old
    table = load_scan(cfg.work_dir / "scan", hashes["scan"])
    valid = np.ones(len(table.files), dtype=bool)
    valid[list(table.skipped)] = False
    layer_channels = {layer: v["channels"] for layer, v in table.meta["layers"].items()}
    units_out: dict[str, Any] = {}
    for unit in cfg.resolved_units():
        if unit.layer not in table.mean:
            raise StepOrderError(f"unit {unit.id}: layer not in the scan; rerun scan")
        if unit.channel >= layer_channels[unit.layer]:
            raise ModelError(
                f"unit {unit.id}: channel out of range (0..{layer_channels[unit.layer] - 1})"
            )
        values = np.asarray(table.mean[unit.layer][:, unit.channel], dtype=np.float32)
        batches = select_unit(
            values, table.files, valid, unit.id, cfg.select.k, cfg.select.batches, cfg.seed
        )
        maxima = np.asarray(table.max[unit.layer][:, unit.channel], dtype=np.float32)
        units_out[unit.id] = [
            {
                "batch": b.batch,
                "max_query": _pick_dict(b.max_query),
                "min_query": _pick_dict(b.min_query),
                "max_references": [_pick_dict(p) for p in b.max_references],
                "min_references": [_pick_dict(p) for p in b.min_references],
                "spatial_max_of_max_query": float(maxima[b.max_query.index]),
            }
            for b in batches
        ]
    result = {"config_hash": hashes["select"], "units": units_out}
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out, result)
    logger.info("selection written: %d units, %d batches each", len(units_out), cfg.select.batches)
    return result


def _target_file(render_dir: Path, unit_id: str, direction: str) -> Path:
    return render_dir / f"{unit_id.replace(':', '_')}_{direction}.npz"


def run_render(
    cfg: BuildConfig, *, net: Net | None = None, force: bool = False, progress: bool = True
) -> dict[str, Any]:
    """Render max and min feature visualisations for every unit (resumable per target).

    Returns:
        Stats (``image_steps_per_s``, counts) of the targets rendered in this call.
    """
    from stimuli_builder.featurevis import RenderTarget, render_targets

    h = step_hashes(cfg)["render"]
    render_dir = cfg.work_dir / "render"
    meta_path = render_dir / "meta.json"
    if force or (meta_path.exists() and json.loads(meta_path.read_text()).get("config_hash") != h):
        shutil.rmtree(render_dir, ignore_errors=True)
    render_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(meta_path, {"config_hash": h})
    targets = [
        RenderTarget(u.id, u.layer, u.channel, sign)
        for u in cfg.resolved_units()
        for sign in (1, -1)
    ]
    todo = [t for t in targets if not _target_file(render_dir, t.unit_id, t.direction).exists()]
    if not todo:
        logger.info("renders up to date, skipped (%s)", render_dir)
        return {"rendered": 0, "targets": len(targets)}
    net = net or load_net(cfg)
    validate_units(net, cfg.resolved_units(), cfg.render.keep_px)
    seed_everything(cfg.seed)
    results, stats = render_targets(net, todo, cfg.render, cfg.seed, progress=progress)
    from stimuli_builder.write import to_uint8

    for res in results:
        save_npz_atomic(
            _target_file(render_dir, res.target.unit_id, res.target.direction),
            images=to_uint8(res.images),
            objectives=res.objectives,
            steps=np.array(res.steps),
        )
    return {"rendered": len(todo), "targets": len(targets), **stats}


def _load_renders(cfg: BuildConfig, unit_id: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    h = step_hashes(cfg)["render"]
    render_dir = cfg.work_dir / "render"
    meta_path = render_dir / "meta.json"
    if not meta_path.exists() or json.loads(meta_path.read_text()).get("config_hash") != h:
        raise StepOrderError(
            f"no renders for this configuration in {render_dir}; run `stimuli-builder render`"
        )
    out = {}
    for side in ("max", "min"):
        path = _target_file(render_dir, unit_id, side)
        if not path.exists():
            raise StepOrderError(
                f"render of {unit_id} ({side}) missing; run `stimuli-builder render`"
            )
        with np.load(path) as data:
            out[side] = (data["images"], data["objectives"])
    return out


def run_write(cfg: BuildConfig, *, force: bool = False) -> dict[str, Any]:
    """Write the stimulus set to ``cfg.out_dir``. Returns the manifest dict.

    Raises:
        StepOrderError: selection or renders missing or made with another configuration.
    """
    from stimuli_builder.write import UnitStimuli, write_stimulus_set

    hashes = step_hashes(cfg)
    manifest_path = cfg.out_dir / "manifest.json"
    if not force and manifest_path.exists():
        old: dict[str, Any] = json.loads(manifest_path.read_text())
        if old.get("provenance", {}).get("build_hash") == hashes["write"]:
            logger.info("stimulus set up to date, skipped (%s)", cfg.out_dir)
            return old
    sel_path = cfg.work_dir / "select" / "selection.json"
    if not sel_path.exists():
        raise StepOrderError(f"no selection in {sel_path}; run `stimuli-builder select`")
    selection = json.loads(sel_path.read_text())
    if selection.get("config_hash") != hashes["select"]:
        raise StepOrderError("the selection was made with another configuration; rerun select")
    table = load_scan(cfg.work_dir / "scan", hashes["scan"])
    units = []
    unit_sets: dict[str, list[str]] = {}
    for u in cfg.resolved_units():
        for s in u.sets:
            unit_sets.setdefault(s, []).append(u.id)
        units.append(
            UnitStimuli(
                id=u.id,
                layer=u.layer,
                channel=u.channel,
                branch=_branch(cfg, u),
                label=u.label or f"{u.layer} {u.channel}",
                hand_picked=u.hand_picked,
                roles=list(u.roles),
                natural=selection["units"][u.id],
                synthetic=_load_renders(cfg, u.id) if cfg.render.enabled else None,
            )
        )
    root = table.root
    decoder = cfg.scan.decoder
    if decoder == "auto":
        decoder = "torch" if pick_device(cfg.device).type == "cuda" else "pil"

    def load_natural(source: str) -> np.ndarray:
        if decoder == "torch":
            import torch

            from stimuli_builder.scan import _decode_on_device

            buf = torch.frombuffer(bytearray((root / source).read_bytes()), dtype=torch.uint8)
            x, _ok = _decode_on_device(
                [buf], torch.device("cpu"), cfg.scan.resize_px, cfg.scan.crop_px
            )
            return x[0].permute(1, 2, 0).numpy()
        return load_crop(root / source, cfg.scan.resize_px, cfg.scan.crop_px, cfg.scan.draft)

    done = table.meta["done"]
    provenance = {
        "builder": f"stimuli_builder {__version__}",
        "model": cfg.model.name,
        "weights_id": table.meta["weights_id"],
        "dataset": {
            "root": str(root),
            "n_images": len(table.files),
            "n_skipped": done["n_skipped"],
        },
        "config": cfg.to_jsonable(),
        "packages": package_versions(),
        "git_commit": git_commit(),
        "build_hash": hashes["write"],
        "step_hashes": hashes,
        "scan": {
            "precision": cfg.scan.precision,
            "decoder": decoder,
            "agreement": done.get("agreement"),
        },
        "unit_sets": unit_sets,
    }
    if cfg.render.enabled:
        provenance["render"] = {
            "recipe": "the paper's recipe (lucent port, batched across units)",
            "steps": cfg.render.steps,
        }
    t0 = time.perf_counter()
    data = write_stimulus_set(
        cfg.out_dir,
        set_id=cfg.id,
        title=cfg.title,
        created_at=cfg.created_at_utc().strftime("%Y-%m-%dT%H:%M:%SZ"),
        image_size_px=cfg.scan.crop_px,
        units=units,
        load_natural=load_natural,
        provenance=provenance,
    )
    logger.info("write took %.1f s", time.perf_counter() - t0)
    return data


def run_build(
    cfg: BuildConfig, *, net: Net | None = None, force: bool = False, progress: bool = True
) -> dict[str, Any]:
    """scan -> select -> render -> write, reusing up-to-date outputs. Returns the manifest."""
    needs_net = net is None
    if needs_net:
        net = load_net(cfg)
    run_scan(cfg, net=net, force=force, progress=progress)
    run_select(cfg, force=force)
    if cfg.render.enabled:
        run_render(cfg, net=net, force=force, progress=progress)
    return run_write(cfg, force=force)
