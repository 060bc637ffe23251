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


def _grating(
    rng: np.random.Generator,
    theta: float,
    freq: float,
    rgb: tuple[float, float, float],
    contrast: float,
) -> np.ndarray:
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) / SIZE - 0.5
    phase = rng.uniform(0, 2 * math.pi)
    wave = np.sin(2 * math.pi * freq * (xx * math.cos(theta) + yy * math.sin(theta)) + phase)
    # A soft blob gives each image its own composition.
    cx, cy = rng.uniform(-0.25, 0.25, size=2)
    blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * rng.uniform(0.08, 0.2) ** 2))
    lum = 0.5 + 0.5 * contrast * wave * (0.4 + 0.6 * blob)
    colour = np.asarray(rgb, dtype=np.float32)[None, None, :]
    img = lum[..., None] * colour + (1 - colour) * 0.35
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


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
) -> Path:
    """Draw the demo set into `root` (replaced if present) as a v1 stimulus set; return root.

    Units `demo:0`..: the first `n_main_units` have role main, the rest practice and catch.
    Each has natural batches 0..n_batches-1 (9 references per side) and 9+9 synthetic images.
    """
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    files: dict[str, Any] = {}
    units = []
    n_units = n_main_units + n_practice_units
    for u in range(n_units):
        rng = np.random.default_rng(1000 + u)
        theta, freq, rgb = _unit_params(u)
        grey = (0.75, 0.75, 0.75)

        def max_image(strength: float) -> np.ndarray:
            jitter = rng.normal(0, 0.12 * (1 - strength) + 0.02)
            return _grating(rng, theta + jitter, freq, rgb, 0.5 + 0.5 * strength)

        def min_image(strength: float) -> np.ndarray:
            return _grating(
                rng,
                theta + math.pi / 2 + rng.normal(0, 0.1),
                freq * 0.6,
                grey,
                0.2 + 0.3 * (1 - strength),
            )

        batches = []
        for b in range(n_batches):
            base = f"images/unit{u:02d}/natural/b{b:02d}"
            max_q = _save(root, f"{base}/max_query.png", max_image(1.0), files)
            min_q = _save(root, f"{base}/min_query.png", min_image(1.0), files)
            max_refs = [
                _save(root, f"{base}/max_{i}.png", max_image(0.9 - 0.05 * i), files)
                for i in range(N_REFS)
            ]
            min_refs = [
                _save(root, f"{base}/min_{i}.png", min_image(0.9 - 0.05 * i), files)
                for i in range(N_REFS)
            ]
            batches.append(
                {
                    "batch": b,
                    "max_query": {"path": max_q, "source": None, "rank": 1, "activation": None},
                    "min_query": {"path": min_q, "source": None, "rank": 1, "activation": None},
                    "max_references": [{"path": p, "rank": i + 2} for i, p in enumerate(max_refs)],
                    "min_references": [{"path": p, "rank": i + 2} for i, p in enumerate(min_refs)],
                }
            )
        syn_base = f"images/unit{u:02d}/synthetic"
        synthetic = {
            "max_references": [
                {
                    "path": _save(
                        root, f"{syn_base}/max_{i}.png", _grating(rng, theta, freq, rgb, 1.0), files
                    ),
                    "objective": None,
                }
                for i in range(N_REFS)
            ],
            "min_references": [
                {
                    "path": _save(
                        root,
                        f"{syn_base}/min_{i}.png",
                        _grating(rng, theta + math.pi / 2, freq, grey, 1.0),
                        files,
                    ),
                    "objective": None,
                }
                for i in range(N_REFS)
            ],
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
    manifest = {
        "schema": "psychvis.stimulus_set",
        "schema_version": 1,
        "id": set_id,
        "title": "psychvis demo (drawn gratings)",
        "created_at": "2026-01-01T00:00:00Z",
        "image_size_px": SIZE,
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
