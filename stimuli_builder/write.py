"""Write a stimulus set v1 folder: natural crops, synthetic PNGs, manifest.json with checksums.

The set is assembled in a temporary sibling folder and renamed into place, so a reader never
sees a half-written set.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from PIL import Image

from stimuli_builder.manifest import (
    Exemplar,
    FileEntry,
    NaturalBatch,
    NaturalSet,
    StimulusManifest,
    Synthetic,
    SyntheticSet,
    Unit,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class UnitStimuli:
    """Everything the writer needs for one unit (plain data, already selected and rendered).

    ``natural`` is a list of batches as produced by the select step (dicts with ``batch``,
    ``max_query``, ``min_query``, ``max_references``, ``min_references``; each pick a dict with
    ``source``, ``rank``, ``activation``). ``synthetic`` maps ``"max"``/``"min"`` to
    (uint8 [n, keep, keep, 3] images, float objectives), strongest first.
    """

    id: str
    layer: str
    channel: int
    branch: str | None
    label: str
    hand_picked: bool
    roles: list[str]
    natural: list[dict[str, Any]] | None
    synthetic: dict[str, tuple[np.ndarray, np.ndarray]] | None


def natural_image_path(source: str) -> str:
    """Set-relative path of a natural crop: one file per source image, shared by units."""
    stem = PurePosixPath(source).with_suffix("")
    safe = "/".join(p.replace(" ", "_") for p in stem.parts if p not in ("..", "."))
    return f"images/natural/{safe}.png"


def _save_png(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb, "RGB").save(path, format="PNG", compress_level=6)


def fit_size(rgb: np.ndarray, size_px: int) -> np.ndarray:
    """Resize uint8 [H, W, 3] to [size_px, size_px, 3] (bicubic) unless it already fits.

    Renders kept at another size than the natural crops (small test canvases) must still match
    the set's ``image_size_px``.
    """
    if rgb.shape[0] == size_px and rgb.shape[1] == size_px:
        return rgb
    img = Image.fromarray(rgb, "RGB").resize((size_px, size_px), Image.Resampling.BICUBIC)
    return np.asarray(img, dtype=np.uint8)


def to_uint8(images: np.ndarray) -> np.ndarray:
    """float [n, 3, H, W] in [0, 1] -> uint8 [n, H, W, 3] (rounded)."""
    return np.clip(np.rint(images * 255.0), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def manifest_digest(manifest: dict[str, Any]) -> str:
    """sha256 of the manifest without ``created_at``: equal for identical builds."""
    body = {k: v for k, v in manifest.items() if k != "created_at"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def write_stimulus_set(
    out_dir: Path,
    *,
    set_id: str,
    title: str | None,
    created_at: str,
    image_size_px: int,
    units: list[UnitStimuli],
    load_natural: Callable[[str], np.ndarray],
    provenance: dict[str, Any],
    workers: int | None = None,
) -> dict[str, Any]:
    """Write the set to ``out_dir`` atomically (temp folder, then rename).

    Args:
        out_dir: final folder; replaced if it exists.
        set_id: manifest ``id``.
        title: manifest ``title`` (omitted when None).
        created_at: ISO 8601 UTC string.
        image_size_px: side of every image.
        units: units with their selected exemplars and renders.
        load_natural: ``source -> uint8 [S, S, 3]`` crop exactly as the network saw it.
        provenance: free-form provenance object.
        workers: PNG encoding threads (default: CPU count).

    Returns:
        The manifest as written (a JSON-able dict).
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        jobs: dict[str, Callable[[], np.ndarray]] = {}
        manifest_units: list[Unit] = []
        for unit in units:
            natural = None
            if unit.natural:
                batches = []
                for b in unit.natural:

                    def ex(pick: dict[str, Any]) -> Exemplar:
                        rel = natural_image_path(pick["source"])
                        src = pick["source"]
                        jobs.setdefault(rel, partial(load_natural, src))
                        return Exemplar(
                            path=rel, source=src, rank=pick["rank"], activation=pick["activation"]
                        )

                    batches.append(
                        NaturalBatch(
                            batch=b["batch"],
                            max_query=ex(b["max_query"]),
                            min_query=ex(b["min_query"]),
                            max_references=[ex(p) for p in b["max_references"]],
                            min_references=[ex(p) for p in b["min_references"]],
                        )
                    )
                natural = NaturalSet(batches=batches)
            synthetic = None
            if unit.synthetic:
                sides: dict[str, list[Synthetic]] = {}
                for side in ("max", "min"):
                    imgs, objs = unit.synthetic[side]
                    entries = []
                    for i, (img, obj) in enumerate(zip(imgs, objs, strict=True)):
                        rel = f"images/{unit.layer}_{unit.channel}/synthetic/{side}_{i}.png"
                        jobs[rel] = partial(fit_size, img, image_size_px)
                        entries.append(Synthetic(path=rel, objective=float(obj)))
                    sides[side] = entries
                synthetic = SyntheticSet(max_references=sides["max"], min_references=sides["min"])
            manifest_units.append(
                Unit(
                    id=unit.id,
                    layer=unit.layer,
                    channel=unit.channel,
                    branch=unit.branch,  # type: ignore[arg-type]
                    label=unit.label,
                    hand_picked=unit.hand_picked,
                    roles=unit.roles,  # type: ignore[arg-type]
                    natural=natural,
                    synthetic=synthetic,
                )
            )

        def produce(rel: str) -> tuple[str, FileEntry]:
            path = tmp / rel
            _save_png(path, jobs[rel]())
            data = path.read_bytes()
            return rel, FileEntry(sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))

        with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
            files = dict(pool.map(produce, sorted(jobs)))
        manifest = StimulusManifest(
            id=set_id,
            title=title,
            created_at=created_at,
            image_size_px=image_size_px,
            provenance=provenance,
            files=dict(sorted(files.items())),
            units=manifest_units,
        )
        data = manifest.to_json_dict()
        if title is None:
            data.pop("title")
        text = json.dumps(data, indent=1, ensure_ascii=False) + "\n"
        (tmp / "manifest.json").write_text(text, encoding="utf-8")
        old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
        if out_dir.exists():
            os.replace(out_dir, old)
        os.replace(tmp, out_dir)
        if old.exists():
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("stimulus set written: %s (%d units, %d files)", out_dir, len(units), len(files))
    return data
