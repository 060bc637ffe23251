"""Build a tiny stimulus set with the builder (used by the contract test)."""

from __future__ import annotations

from pathlib import Path

from conftest import TINY_MODEL, make_image_folder

from stimuli_builder.config import build_config
from stimuli_builder.pipeline import run_build


def build_tiny_set(tmp: Path) -> Path:
    """Tiny CNN, 60 generated JPEGs, 3 units, 4 batches of k=3, 3 synthetic images per side."""
    root = make_image_folder(tmp / "images", 60, classes=3)
    cfg = build_config(
        {
            "id": "contract-tiny",
            "created_at": "2026-01-01T00:00:00Z",
            "device": "cpu",
            "work_dir": str(tmp / "work"),
            "out_dir": str(tmp / "set"),
            "model": {"name": TINY_MODEL, "weights": "random"},
            "data": {"root": str(root)},
            "units": [
                {"layer": "conv1", "channel": 2},
                {"layer": "conv2", "channel": 5, "hand_picked": True},
                {"layer": "conv2", "channel": 0, "roles": ["practice", "catch"]},
            ],
            "scan": {"batch_size": 16, "resize_px": 40, "crop_px": 32},
            "select": {"k": 3, "batches": 4},
            "render": {
                "n_images": 3,
                "canvas_px": 32,
                "keep_px": 32,
                "steps": 4,
                "jitter1_px": 4,
                "jitter2_px": 2,
            },
        }
    )
    run_build(cfg, progress=False)
    return cfg.out_dir
