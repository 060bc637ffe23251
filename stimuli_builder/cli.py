"""Typer CLI: ``stimuli-builder build|scan|select|render|write CONFIG.toml [overrides]``.

The only module that reads argv; every command builds a BuildConfig and calls one pipeline
function. Any config key can be set with ``--set key.path=value``; common keys have flags.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from stimuli_builder.config import BuildConfig, load_config, parse_override
from stimuli_builder.errors import BuildError

logger = logging.getLogger(__name__)

app = typer.Typer(
    help="Build psychvis stimulus sets: scan an image folder, select exemplars, render "
    "feature visualisations, write the set.",
    no_args_is_help=True,
    add_completion=False,
)

ConfigArg = Annotated[
    Path | None, typer.Argument(help="TOML config file (optional when --preset/--set say enough).")
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set", "-s", help="Override any config key: --set scan.batch_size=128 (repeatable)."
    ),
]
PresetOpt = Annotated[str | None, typer.Option(help="Unit preset: paper-exp1 | paper-exp2.")]
DataOpt = Annotated[Path | None, typer.Option("--data", help="Image folder (data.root).")]
OutOpt = Annotated[Path | None, typer.Option("--out", help="Output stimulus set folder (out_dir).")]
WorkOpt = Annotated[
    Path | None, typer.Option("--work-dir", help="Folder for intermediate artefacts.")
]
IdOpt = Annotated[str | None, typer.Option("--id", help="Stimulus set id.")]
DeviceOpt = Annotated[str | None, typer.Option(help="auto | cpu | cuda | cuda:N.")]
ModelOpt = Annotated[
    str | None, typer.Option(help="inceptionv1 | torchvision name | module:factory.")
]
WeightsOpt = Annotated[Path | None, typer.Option("--weights", help="Local state-dict file.")]
RandomOpt = Annotated[
    bool, typer.Option("--random-weights", help="Seeded random weights (tests, benchmarks).")
]
SeedOpt = Annotated[int | None, typer.Option(help="Build seed.")]
StepsOpt = Annotated[int | None, typer.Option("--steps", help="Render optimisation steps.")]
BatchesOpt = Annotated[int | None, typer.Option("--batches", help="Natural batches B.")]
KOpt = Annotated[
    int | None, typer.Option("--k", help="Images per side per batch (query + references).")
]
ImagesOpt = Annotated[
    int | None, typer.Option("--images", help="Synthetic images per unit and direction.")
]
MaxImagesOpt = Annotated[
    int | None, typer.Option("--max-images", help="Scan only the first N files.")
]
BatchSizeOpt = Annotated[int | None, typer.Option("--batch-size", help="Scan batch size.")]
WorkersOpt = Annotated[int | None, typer.Option("--workers", help="Scan DataLoader workers.")]
PrecisionOpt = Annotated[
    str | None, typer.Option("--precision", help="Scan precision: fp32 | bf16 | fp16.")
]
CanvasOpt = Annotated[
    int | None, typer.Option("--canvas", help="Render canvas side in px (keep = canvas*7/8).")
]
GroupsOpt = Annotated[
    int | None, typer.Option("--groups", help="Render groups per batch (0 = from free memory).")
]
NoRenderOpt = Annotated[bool, typer.Option("--no-render", help="Skip synthetic images.")]
CreatedOpt = Annotated[
    str | None,
    typer.Option("--created-at", help="Fixed created_at (ISO 8601) for reproducible manifests."),
]
ForceOpt = Annotated[
    bool, typer.Option("--force", help="Recompute even if outputs are up to date.")
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Warnings only, no progress bar.")]


def resolve_config(
    config: Path | None,
    sets: list[str] | None = None,
    *,
    preset: str | None = None,
    data: Path | None = None,
    out: Path | None = None,
    work_dir: Path | None = None,
    set_id: str | None = None,
    device: str | None = None,
    model: str | None = None,
    weights: Path | None = None,
    random_weights: bool = False,
    seed: int | None = None,
    steps: int | None = None,
    batches: int | None = None,
    k: int | None = None,
    images: int | None = None,
    max_images: int | None = None,
    batch_size: int | None = None,
    workers: int | None = None,
    precision: str | None = None,
    canvas: int | None = None,
    groups: int | None = None,
    no_render: bool = False,
    created_at: str | None = None,
) -> BuildConfig:
    """Config file + flags + ``--set`` overrides (in that order of precedence, last wins).

    Raises:
        BuildError: a bad file, key or value (the message names it).
    """
    from stimuli_builder.errors import ConfigError

    if weights is not None and random_weights:
        raise ConfigError("--weights and --random-weights exclude each other")
    flags: list[tuple[list[str], Any]] = []

    def put(key: str, value: Any) -> None:
        if value is not None:
            flags.append((key.split("."), str(value) if isinstance(value, Path) else value))

    put("preset", preset)
    put("data.root", data.resolve() if data else None)
    put("out_dir", out.resolve() if out else None)
    put("work_dir", work_dir.resolve() if work_dir else None)
    put("id", set_id)
    put("device", device)
    put("model.name", model)
    put("model.weights", weights.resolve() if weights else None)
    put("model.weights", "random" if random_weights else None)
    put("seed", seed)
    put("render.steps", steps)
    put("select.batches", batches)
    put("select.k", k)
    put("render.n_images", images)
    put("data.max_images", max_images)
    put("scan.batch_size", batch_size)
    put("scan.num_workers", workers)
    put("scan.precision", precision)
    if canvas is not None:
        put("render.canvas_px", canvas)
        put("render.keep_px", canvas * 7 // 8)
    put("render.groups_per_batch", groups)
    put("render.enabled", False if no_render else None)
    if created_at is not None:
        try:
            datetime.fromisoformat(created_at.replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(f"--created-at {created_at!r} is not an ISO 8601 time") from None
        put("created_at", created_at)
    flags.extend(parse_override(s) for s in sets or [])
    return load_config(config, flags)


def _run(quiet: bool, action: Callable[[], Any]) -> Any:
    from stimuli_builder.runtime import configure_logging

    configure_logging(logging.WARNING if quiet else logging.INFO)
    try:
        return action()
    except BuildError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def _common(**kw: Any) -> dict[str, Any]:
    keys = (
        "preset data out work_dir set_id device model weights random_weights seed steps batches k "
        "images max_images batch_size workers precision canvas groups no_render created_at"
    ).split()
    return {key: kw[key] for key in keys}


def _options(
    config: ConfigArg = None,
    sets: SetOpt = None,
    preset: PresetOpt = None,
    data: DataOpt = None,
    out: OutOpt = None,
    work_dir: WorkOpt = None,
    set_id: IdOpt = None,
    device: DeviceOpt = None,
    model: ModelOpt = None,
    weights: WeightsOpt = None,
    random_weights: RandomOpt = False,
    seed: SeedOpt = None,
    steps: StepsOpt = None,
    batches: BatchesOpt = None,
    k: KOpt = None,
    images: ImagesOpt = None,
    max_images: MaxImagesOpt = None,
    batch_size: BatchSizeOpt = None,
    workers: WorkersOpt = None,
    precision: PrecisionOpt = None,
    canvas: CanvasOpt = None,
    groups: GroupsOpt = None,
    no_render: NoRenderOpt = False,
    created_at: CreatedOpt = None,
    force: ForceOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """The options every step takes (a signature template; never called)."""


def _step(name: str, summary: str, run: Callable[[BuildConfig, bool, bool], str]) -> None:
    """Register a step command taking the shared options; `run(cfg, force, progress)` reports."""

    def command(**options: Any) -> None:
        quiet = bool(options["quiet"]) or name == "show-config"  # its output is JSON only

        def action() -> None:
            cfg = resolve_config(options["config"], options["sets"], **_common(**options))
            typer.echo(run(cfg, bool(options["force"]), not quiet))

        _run(quiet, action)

    # Typer reads the signature: every step gets the same typed options, declared once.
    command.__signature__ = inspect.signature(_options, eval_str=True)  # type: ignore[attr-defined]
    command.__annotations__ = dict(_options.__annotations__)
    command.__doc__ = summary
    command.__name__ = name.replace("-", "_")
    app.command(name)(command)


def _build(cfg: BuildConfig, force: bool, progress: bool) -> str:
    from stimuli_builder.pipeline import run_build
    from stimuli_builder.write import manifest_digest

    manifest = run_build(cfg, force=force, progress=progress)
    return (
        f"wrote {cfg.out_dir} ({len(manifest['units'])} units, {len(manifest['files'])} files, "
        f"digest {manifest_digest(manifest)[:16]})"
    )


def _scan(cfg: BuildConfig, force: bool, progress: bool) -> str:
    from stimuli_builder.pipeline import run_scan

    done = run_scan(cfg, force=force, progress=progress)
    return (
        f"scanned {done['n_images']} images ({done['n_skipped']} skipped) "
        f"into {cfg.work_dir / 'scan'}"
    )


def _select(cfg: BuildConfig, force: bool, progress: bool) -> str:
    from stimuli_builder.pipeline import run_select

    result = run_select(cfg, force=force)
    return f"selected exemplars for {len(result['units'])} units"


def _render(cfg: BuildConfig, force: bool, progress: bool) -> str:
    from stimuli_builder.pipeline import run_render

    return json.dumps(run_render(cfg, force=force, progress=progress), sort_keys=True)


def _write(cfg: BuildConfig, force: bool, progress: bool) -> str:
    from stimuli_builder.pipeline import run_write
    from stimuli_builder.write import manifest_digest

    manifest = run_write(cfg, force=force)
    return f"wrote {cfg.out_dir} (digest {manifest_digest(manifest)[:16]})"


def _show(cfg: BuildConfig, force: bool, progress: bool) -> str:
    return json.dumps(cfg.to_jsonable(), indent=1)


_step("build", "Run scan, select, render and write (up-to-date steps are skipped).", _build)
_step(
    "scan", "Scan the image folder: per-channel spatial mean and max of every needed layer.", _scan
)
_step(
    "select",
    "Select queries and references per batch from the scan (docs/protocol.md, Natural exemplars).",
    _select,
)
_step(
    "render",
    "Render max and min feature visualisations for every unit (docs/protocol.md, Feature visualizations).",
    _render,
)
_step("write", "Write the stimulus set (manifest, images, checksums, provenance).", _write)
_step(
    "show-config", "Print the resolved configuration as JSON (after file, flags and --set).", _show
)


@app.command()
def presets() -> None:
    """List the unit presets and their unit counts per role."""
    from stimuli_builder.presets import PRESETS

    for name, factory in PRESETS.items():
        units = factory()
        roles: dict[str, int] = {}
        for u in units:
            for r in u.roles:
                roles[r] = roles.get(r, 0) + 1
        typer.echo(f"{name}: {len(units)} units " + json.dumps(roles, sort_keys=True))
