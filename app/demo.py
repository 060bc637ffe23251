"""The demo: a small procedurally drawn stimulus set and a ready experiment (no ImageNet photos).

Each demo "unit" is a made-up orientation-and-colour detector: its maximally activating images
are gratings near its preferred orientation in its colour, its minimally activating ones are
orthogonal, grey gratings. That keeps the demo task solvable, like the real one with real units.
"""

from __future__ import annotations

import colorsys
import hashlib
import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

DEMO_SET_ID = "psychvis-demo"
SIZE = 224
N_MAIN_UNITS = 10
N_PRACTICE_UNITS = 2
N_BATCHES = 3
N_REFS = 9
DEMO_UNITS = N_MAIN_UNITS + N_PRACTICE_UNITS


def _grating(
    rng: np.random.Generator,
    theta: float,
    freq: float,
    rgb: tuple[float, float, float],
    contrast: float,
    size: int,
) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
    phase = rng.uniform(0, 2 * math.pi)
    wave = np.sin(2 * math.pi * freq * (xx * math.cos(theta) + yy * math.sin(theta)) + phase)
    # A soft blob gives each image its own composition.
    cx, cy = rng.uniform(-0.25, 0.25, size=2)
    blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * rng.uniform(0.08, 0.2) ** 2))
    lum = 0.5 + 0.5 * contrast * wave * (0.4 + 0.6 * blob)
    colour = np.asarray(rgb, dtype=np.float32)[None, None, :]
    img = lum[..., None] * colour + (1 - colour) * 0.35
    out: np.ndarray = (np.clip(img, 0, 1) * 255).astype(np.uint8)
    return out


class _Unit:
    """Draws the images of one made-up unit (preferred orientation, frequency and colour)."""

    GREY = (0.75, 0.75, 0.75)

    def __init__(self, index: int, size: int) -> None:
        self.rng = np.random.default_rng(1000 + index)
        self.theta, self.freq, self.rgb = _unit_params(index)
        self.size = size

    def max_image(self, strength: float) -> np.ndarray:
        jitter = self.rng.normal(0, 0.12 * (1 - strength) + 0.02)
        return _grating(
            self.rng, self.theta + jitter, self.freq, self.rgb, 0.5 + 0.5 * strength, self.size
        )

    def min_image(self, strength: float) -> np.ndarray:
        theta = self.theta + math.pi / 2 + self.rng.normal(0, 0.1)
        return _grating(
            self.rng, theta, self.freq * 0.6, self.GREY, 0.2 + 0.3 * (1 - strength), self.size
        )

    def synthetic(self, maximal: bool) -> np.ndarray:
        if maximal:
            return _grating(self.rng, self.theta, self.freq, self.rgb, 1.0, self.size)
        return _grating(self.rng, self.theta + math.pi / 2, self.freq, self.GREY, 1.0, self.size)


def _unit_params(index: int) -> tuple[float, float, tuple[float, float, float]]:
    theta = (index * 37 % 180) * math.pi / 180
    freq = 4 + (index % 4) * 2.5
    hue = (index * 0.17) % 1.0
    return theta, freq, colorsys.hsv_to_rgb(hue, 0.8, 1.0)


def _save(root: Path, rel: str, array: np.ndarray, files: dict[str, Any]) -> str:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format="PNG", compress_level=6)
    data = path.read_bytes()
    files[rel] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    return rel


def write_demo_set(
    root: Path,
    *,
    n_main_units: int = N_MAIN_UNITS,
    n_practice_units: int = N_PRACTICE_UNITS,
    n_batches: int = N_BATCHES,
    set_id: str = DEMO_SET_ID,
    size: int = SIZE,
    on_unit: Callable[[], None] | None = None,
) -> Path:
    """Draw the demo set into `root` (replaced if present) as a v1 stimulus set; return root.

    Units `demo:0`..: the first `n_main_units` have role main, the rest practice and catch.
    Each has natural batches 0..n_batches-1 (9 references per side) and 9+9 synthetic images,
    `size` pixels square (tests use small images to stay fast). `on_unit` is called after
    each unit's images are written (progress display).
    """
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    files: dict[str, Any] = {}
    units = []
    for u in range(n_main_units + n_practice_units):
        unit = _Unit(u, size)
        batches = []
        for b in range(n_batches):
            base = f"images/unit{u:02d}/natural/b{b:02d}"
            max_q = _save(root, f"{base}/max_query.png", unit.max_image(1.0), files)
            min_q = _save(root, f"{base}/min_query.png", unit.min_image(1.0), files)
            max_refs = [
                _save(root, f"{base}/max_{i}.png", unit.max_image(0.9 - 0.05 * i), files)
                for i in range(N_REFS)
            ]
            min_refs = [
                _save(root, f"{base}/min_{i}.png", unit.min_image(0.9 - 0.05 * i), files)
                for i in range(N_REFS)
            ]
            batches.append(
                {
                    "batch": b,
                    "max_query": {"path": max_q, "rank": 1},
                    "min_query": {"path": min_q, "rank": 1},
                    "max_references": [{"path": p, "rank": i + 2} for i, p in enumerate(max_refs)],
                    "min_references": [{"path": p, "rank": i + 2} for i, p in enumerate(min_refs)],
                }
            )
        syn = f"images/unit{u:02d}/synthetic"
        synthetic = {
            f"{side}_references": [
                {"path": _save(root, f"{syn}/{side}_{i}.png", unit.synthetic(side == "max"), files)}
                for i in range(N_REFS)
            ]
            for side in ("max", "min")
        }
        units.append(
            {
                "id": f"demo:{u}",
                "layer": "demo",
                "channel": u,
                "label": f"demo unit {u}",
                "hand_picked": False,
                "roles": ["main"] if u < n_main_units else ["practice", "catch"],
                "natural": {"batches": batches},
                "synthetic": synthetic,
            }
        )
        if on_unit is not None:
            on_unit()
    manifest = {
        "schema": "psychvis.stimulus_set",
        "schema_version": 1,
        "id": set_id,
        "title": "psychvis demo (drawn gratings)",
        "created_at": "2026-01-01T00:00:00Z",
        "image_size_px": size,
        "provenance": {
            "builder": "app.demo",
            "model": "none (procedural gratings)",
            "dataset": None,
        },
        "files": files,
        "units": units,
    }
    (root / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    return root


EXAMPLE_UNIT = 97
"""The made-up unit of the instructions' example screen: no demo or study unit, so the example
never shows an image that a participant is asked about."""


def write_example_images(root: Path) -> list[Path]:
    """Draw the instructions' example screen (static/example/): 9 + 9 references and 2 queries
    of one made-up unit, lossy WebP. Rerun with `python -m app.demo static/example`."""
    root.mkdir(parents=True, exist_ok=True)
    unit = _Unit(EXAMPLE_UNIT, SIZE)
    images = {
        "max_query": unit.max_image(1.0),
        "min_query": unit.min_image(1.0),
        **{f"max_{i}": unit.max_image(0.9 - 0.05 * i) for i in range(N_REFS)},
        **{f"min_{i}": unit.min_image(0.9 - 0.05 * i) for i in range(N_REFS)},
    }
    written = []
    for name, array in images.items():
        path = root / f"{name}.webp"
        Image.fromarray(array).save(path, format="WEBP", quality=80, method=6)
        written.append(path)
    return written


if __name__ == "__main__":
    import sys

    write_example_images(Path(sys.argv[1]))
