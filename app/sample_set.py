"""A sample stimulus set that satisfies the shipped design presets, drawn without a GPU.

Its images are the demo's procedurally drawn gratings, not a real study's stimuli: the set is
for trying a design end to end (import, create, launch, export) before building real stimuli
with `stimuli_builder` (docs/builder.md) or importing a released set.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.demo import N_REFS, _save, _Unit
from app.designs import Design, load_design, preset_names

SAMPLE_SET_ID = "psychvis-sample"
DEFAULT_SIZE_PX = 64
DEFAULT_BATCHES = 20
N_LOOKS = 12
"""Distinct drawn units; the manifest's units reuse them in turn (unit i looks like i % 12)."""
ROLES = ("main", "practice", "catch", "intuitiveness")


def required_units(designs: list[Design]) -> dict[str, set[str]]:
    """Unit id -> roles, so that every design finds the units and roles it names.

    Designs that ask for `count` units of a role get ids `<role>:0`, `<role>:1`, ... (the
    largest count any design asks for); designs that list ids get those ids.
    """
    roles: dict[str, set[str]] = {}
    for design in designs:
        for name, unit_list in design.units.items():
            role = name if name in ROLES else (unit_list.role or "main")
            role = role if role in ROLES else "main"
            ids = list(unit_list.ids or ())
            if not ids:
                ids = [f"{role}:{i}" for i in range(unit_list.count or 1)]
            for unit_id in ids:
                roles.setdefault(unit_id, set()).add(role)
    return roles


def write_sample_set(
    root: Path,
    presets: list[str] | None = None,
    *,
    size: int = DEFAULT_SIZE_PX,
    n_batches: int = DEFAULT_BATCHES,
    set_id: str = SAMPLE_SET_ID,
    on_image: Callable[[], None] | None = None,
) -> Path:
    """Write a v1 stimulus set into `root` (an empty or new folder) and return root.

    Args:
        root: output folder; refused when it exists and is not empty.
        presets: design presets the set must satisfy (default: every shipped preset).
        size: image width and height in pixels.
        n_batches: natural batches per unit (batch b takes looks' image b % 10 as its query).
        set_id: the set's id (its name once imported).
        on_image: called after each image is written (progress display).

    Raises:
        FileExistsError: `root` exists and is not empty.
        DesignInvalid: an unknown preset name.
    """
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"{root} exists and is not empty")
    root.mkdir(parents=True, exist_ok=True)
    names = list(presets) if presets else list(preset_names())
    units_needed = required_units([load_design(name) for name in names])
    files: dict[str, Any] = {}

    def save(rel: str, array: Any) -> str:
        path = _save(root, rel, array, files)
        if on_image is not None:
            on_image()
        return path

    # Ten images per side per look: a batch needs a query and nine distinct references.
    looks: list[dict[str, Any]] = []
    for look_index in range(min(N_LOOKS, len(units_needed))):
        drawn = _Unit(look_index, size)
        base = f"images/look{look_index:02d}"
        looks.append(
            {
                "max": [
                    save(f"{base}/max_{i}.png", drawn.max_image(1.0 - 0.05 * i))
                    for i in range(N_REFS + 1)
                ],
                "min": [
                    save(f"{base}/min_{i}.png", drawn.min_image(1.0 - 0.05 * i))
                    for i in range(N_REFS + 1)
                ],
                "synthetic": {
                    f"{side}_references": [
                        {"path": save(f"{base}/syn_{side}_{i}.png", drawn.synthetic(side == "max"))}
                        for i in range(N_REFS)
                    ]
                    for side in ("max", "min")
                },
            }
        )
    units = []
    for index, (unit_id, roles) in enumerate(sorted(units_needed.items())):
        look = looks[index % len(looks)]
        batches = []
        for b in range(n_batches):
            q = b % (N_REFS + 1)
            batch: dict[str, Any] = {"batch": b}
            for side in ("max", "min"):
                images = look[side]
                batch[f"{side}_query"] = {"path": images[q], "rank": 1}
                batch[f"{side}_references"] = [
                    {"path": p, "rank": r + 2}
                    for r, p in enumerate(p for i, p in enumerate(images) if i != q)
                ]
            batches.append(batch)
        layer, _, channel = unit_id.partition(":")
        units.append(
            {
                "id": unit_id,
                "layer": layer,
                "channel": int(channel) if channel.isdigit() else index,
                "label": f"sample unit {unit_id} (drawn gratings)",
                "hand_picked": False,
                "roles": sorted(roles),
                "natural": {"batches": batches},
                "synthetic": look["synthetic"],
            }
        )
    manifest = {
        "schema": "psychvis.stimulus_set",
        "schema_version": 1,
        "id": set_id,
        "title": "psychvis sample set: drawn gratings, NOT a real study's stimuli",
        "created_at": "2026-01-01T00:00:00Z",
        "image_size_px": size,
        "provenance": {
            "builder": "app.sample_set",
            "model": "none (procedural gratings; unit ids only match the presets' names)",
            "dataset": None,
            "presets": names,
        },
        "files": files,
        "units": units,
    }
    (root / "manifest.json").write_text(
        json.dumps(manifest, separators=(",", ":")), encoding="utf-8"
    )
    return root


def sample_image_count(presets: list[str] | None = None) -> int:
    """How many images `write_sample_set` draws (for a progress bar's total)."""
    names = list(presets) if presets else list(preset_names())
    n_units = len(required_units([load_design(name) for name in names]))
    return min(N_LOOKS, n_units) * (2 * (N_REFS + 1) + 2 * N_REFS)
