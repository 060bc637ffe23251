"""Fixtures for builder tests: a tiny CNN, generated JPEG folders, a small BuildConfig."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

TINY_MODEL = "tinynet:make_tiny_net"


def make_image_folder(root: Path, n: int, *, classes: int = 0, seed: int = 0) -> Path:
    """Write ``n`` small JPEGs (varied sizes, colours and textures) below ``root``."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        w, h = int(rng.integers(40, 64)), int(rng.integers(40, 64))
        base = rng.uniform(0, 255, size=3)
        noise = rng.normal(0, rng.uniform(5, 80), size=(h, w, 3))
        yy, xx = np.mgrid[0:h, 0:w]
        stripes = 60 * np.sin(xx * rng.uniform(0.1, 1.5) + yy * rng.uniform(0.1, 1.5))[..., None]
        arr = np.clip(base + noise + stripes, 0, 255).astype(np.uint8)
        folder = root / f"n{i % classes:08d}" if classes else root
        folder.mkdir(exist_ok=True)
        Image.fromarray(arr).save(folder / f"img_{i:05d}.JPEG", quality=90)
    return root


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """60 JPEGs in 3 class folders."""
    return make_image_folder(tmp_path / "images", 60, classes=3)


@pytest.fixture
def tiny_config(tmp_path: Path, image_folder: Path) -> Callable[..., Any]:
    """Factory of a small BuildConfig dict for the tiny net (override keys via kwargs)."""

    def make(**overrides: Any) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": "tiny-test",
            "created_at": "2026-01-01T00:00:00Z",
            "seed": 3,
            "device": "cpu",
            "work_dir": str(tmp_path / "work"),
            "out_dir": str(tmp_path / "out"),
            "model": {"name": TINY_MODEL, "weights": "random"},
            "data": {"root": str(image_folder)},
            "units": [
                {"layer": "conv1", "channel": 2},
                {"layer": "conv2", "channel": 5, "hand_picked": True},
                {"layer": "conv2", "channel": 0, "roles": ["practice", "catch"]},
            ],
            "scan": {"batch_size": 8, "chunk_size": 16, "resize_px": 40, "crop_px": 32},
            "select": {"k": 3, "batches": 4},
            "render": {
                "n_images": 3,
                "canvas_px": 32,
                "keep_px": 28,
                "steps": 6,
                "jitter1_px": 4,
                "jitter2_px": 2,
                "groups_per_batch": 4,
            },
        }
        for key, value in overrides.items():
            node = data
            parts = key.split("__")
            for p in parts[:-1]:
                node = node.setdefault(p, {})
            node[parts[-1]] = value
        return data

    return make
