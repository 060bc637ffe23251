"""Read released stimulus layouts into v1 manifests: IMI task folders, IMI unit-folder trees and
the paper's stimulus tree (docs/stimulus_set_v1.md, "Other layouts"); no DB, no torch.

Each reader lists the files it finds (never assumes them), orders references by the source's own
numbering, and says which files it skipped and why.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from PIL import Image

from app.errors import ManifestInvalid
from app.nesting import TooDeep, loads_json
from app.stimuli import (
    ROLES,
    SCHEMA,
    SCHEMA_VERSION,
    Exemplar,
    FileEntry,
    LoadedSet,
    Natural,
    NaturalBatch,
    StimulusManifest,
    Synthetic,
    SyntheticImage,
    Unit,
    _safe_member,
    load_manifest,
    sha256_file,
    validate_manifest,
)

ReferenceType = Literal["natural", "synthetic"]
Numbering = Literal["auto", "old", "new"]
REFERENCE_TYPES: tuple[ReferenceType, ...] = ("natural", "synthetic")

SUPPORTED_LAYOUTS = (
    "psychvis set: manifest.json + images/ (docs/stimulus_set_v1.md)",
    "IMI task folder: index.json + trials/trial_<k>/{queries,references}/",
    "IMI unit folders: <layer>/channel_<c>/{natural_images,optimized_images}/"
    "[batch_<b>/]{max,min}_<i>.png",
    "paper stimulus tree: layer_<l>/kernel_size_<k>/channel_<c>/"
    "{natural_images/batch_<b>,optimized_images}/{max,min}_<i>.png",
)

# InceptionV1 layers and the global channel range of each branch of their pre-ReLU
# concatenation (1x1, 3x3, 5x5, pool): the table in docs/stimulus_set_v1.md.
INCEPTION_BRANCHES: dict[str, tuple[tuple[int, int], ...]] = {
    "mixed3a": ((0, 64), (64, 192), (192, 224), (224, 256)),
    "mixed3b": ((0, 128), (128, 320), (320, 416), (416, 480)),
    "mixed4a": ((0, 192), (192, 396), (396, 444), (444, 508)),
    "mixed4b": ((0, 160), (160, 384), (384, 448), (448, 512)),
    "mixed4c": ((0, 128), (128, 384), (384, 448), (448, 512)),
    "mixed4d": ((0, 112), (112, 400), (400, 464), (464, 528)),
    "mixed4e": ((0, 256), (256, 576), (576, 704), (704, 832)),
    "mixed5a": ((0, 256), (256, 576), (576, 704), (704, 832)),
    "mixed5b": ((0, 384), (384, 768), (768, 896), (896, 1024)),
}
INCEPTION_LAYERS = tuple(INCEPTION_BRANCHES)
BRANCHES: tuple[Literal["1x1", "3x3", "5x5", "pool"], ...] = ("1x1", "3x3", "5x5", "pool")
_BRANCH_SUFFIX = {"1x1": "1x1", "3x3": "3x3", "5x5": "5x5", "pool_reduce": "pool"}


@dataclass(frozen=True)
class ImportOptions:
    """What the experimenter declares about one source folder.

    reference_type: the kind of an IMI task folder's references when its index.json doesn't say.
    role: every unit of this source gets this role (else: catch_trial_idxs / "main").
    numbering: IMI task folders' reference numbering ("auto": detected from the files).
    """

    reference_type: ReferenceType | None = None
    role: str | None = None
    numbering: Numbering = "auto"


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


@dataclass
class _Reader:
    """Collects the files of one source: hashes what it uses, records what it skips."""

    root: Path
    files: dict[str, FileEntry] = field(default_factory=dict)
    skipped: list[Skipped] = field(default_factory=list)

    def add(self, rel: str) -> str:
        if rel not in self.files:
            path = _safe_member(self.root, rel)
            self.files[rel] = FileEntry(sha256=sha256_file(path), bytes=path.stat().st_size)
        return rel

    def digest(self, rel: str) -> str:
        return self.files[self.add(rel)].sha256

    def drop(self, rel: str, reason: str) -> None:
        """Leave out a file that was hashed to decide about it."""
        self.files.pop(rel, None)
        self.skip(rel, reason)

    def skip(self, rel: str, reason: str) -> None:
        self.skipped.append(Skipped(rel, reason))


_INDEXED = re.compile(r"^(min|max)_(\d+)\.png$")


def _indexed_files(reader: _Reader, folder: Path, rel: str) -> dict[str, dict[int, str]]:
    """`{max,min}_<i>.png` of a folder by side and number; anything else is reported skipped."""
    out: dict[str, dict[int, str]] = {"max": {}, "min": {}}
    for f in sorted(folder.iterdir()):
        if f.is_dir() or f.name.startswith("."):
            continue
        if m := _INDEXED.match(f.name):
            out[m.group(1)][int(m.group(2))] = f"{rel}/{f.name}"
        else:
            reader.skip(f"{rel}/{f.name}", "not a {max,min}_<i>.png image")
    return out


def _manifest(
    reader: _Reader,
    units: Sequence[Unit],
    *,
    set_id: str,
    title: str,
    provenance: dict[str, Any],
) -> StimulusManifest:
    if not reader.files:
        raise ManifestInvalid(f"{reader.root} holds no stimulus images")
    with Image.open(_safe_member(reader.root, next(iter(reader.files)))) as img:
        size = img.width
    manifest = StimulusManifest.model_validate(
        {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "id": set_id,
            "title": title,
            "created_at": datetime.now(UTC),
            "image_size_px": size,
            "provenance": {
                **provenance,
                "skipped": [{"path": s.path, "reason": s.reason} for s in reader.skipped],
            },
            "files": {k: v.model_dump() for k, v in reader.files.items()},
            "units": [u.model_dump() for u in units],
        }
    )
    validate_manifest(manifest, reader.root)
    return manifest


def slug(text: str, default: str = "stimuli") -> str:
    found = re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-._")
    return (found or default)[:80]


# --- IMI task folders ---------------------------------------------------------------------------

_TRIAL_DIR = re.compile(r"^trial_(\d+)$")
_KIND_WORDS = {"natural": "natural", "optimized": "synthetic", "synthetic": "synthetic"}


def _kind_from_index(index: dict[str, Any]) -> ReferenceType | None:
    """The reference kind stated by a field of index.json (never guessed from task_name)."""
    for key in ("reference_type", "condition", "mode"):
        value = index.get(key)
        if isinstance(value, str) and value.lower() in _KIND_WORDS:
            return "natural" if _KIND_WORDS[value.lower()] == "natural" else "synthetic"
    return None


def _kind_from_structure(root: Path) -> tuple[ReferenceType | None, str | None]:
    """The kind from IMI's task-structure file, which its make_experiments.sh copies next to the
    task folders (tools/data_generation/create_task_structure_json.py: every trial has a `mode`,
    "natural" or "optimized", catch trials "catch_trial").

    Returns:
        The kind and the file that says it, or (None, None).
    """
    m = re.match(r"^task_(\d+)$", root.name)
    if m is None:
        return None, None
    for path in sorted(root.parent.glob("*.json")):
        try:
            data = loads_json(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        tasks = data.get("tasks") if isinstance(data, dict) else None
        for task in tasks if isinstance(tasks, list) else []:
            if not isinstance(task, dict) or task.get("index") != int(m.group(1)):
                continue
            trials = task.get("trials")
            listed = trials if isinstance(trials, list) else []
            modes = {t.get("mode") for t in listed if isinstance(t, dict)} - {"catch_trial"}
            if len(modes) == 1 and (mode := modes.pop()) in _KIND_WORDS:
                return ("natural" if mode == "natural" else "synthetic"), path.name
    return None, None


def imi_display_order(
    indices: Iterable[int], side: str, numbering: Literal["old", "new"]
) -> tuple[list[int], list[int]]:
    """IMI's task code order of one side's reference numbers, and the numbers it never shows.

    mturk/2afc/task.js of brendel-group/imi shows `max_8, max_7, ...` and `min_8, min_7, ...`;
    its older numbering (min files `min_1..9`) showed `min_9, min_8, ...`.
    """
    start = 9 if (side == "min" and numbering == "old") else 8
    present = sorted(set(indices), reverse=True)
    return [i for i in present if i <= start], sorted(i for i in present if i > start)


def imi_task_units(root: Path, options: ImportOptions) -> tuple[StimulusManifest, list[Skipped]]:
    """Convert an IMI/causal task folder (index.json + trials/) into a v1 manifest in memory.

    Raises:
        ManifestInvalid: naming the missing or malformed part, or asking for --reference-type.
    """
    try:
        index = loads_json((root / "index.json").read_text(encoding="utf-8"))
    except TooDeep as exc:
        raise ManifestInvalid(f"index.json is {exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ManifestInvalid(f"index.json is not valid JSON: {exc}") from None
    if not isinstance(index, dict):
        raise ManifestInvalid("index.json must hold a JSON object")
    task_name = str(index.get("task_name") or root.name)
    try:
        n_trials = int(index["n_trials"])
        n_refs = int(index.get("n_reference_images", 9))
        catch = {int(i) for i in index.get("catch_trial_idxs") or []}
    except (KeyError, TypeError, ValueError):
        raise ManifestInvalid(
            "index.json needs integer n_trials (and n_reference_images, catch_trial_idxs)"
        ) from None
    stated = _kind_from_index(index)
    stated_by = "index.json" if stated else None
    if stated is None:
        stated, stated_by = _kind_from_structure(root)
    if stated and options.reference_type and stated != options.reference_type:
        raise ManifestInvalid(
            f"{stated_by} says the references are {stated}, --reference-type says "
            f"{options.reference_type}"
        )
    ref_kind = stated or options.reference_type
    if ref_kind is None:
        raise ManifestInvalid(
            f"{task_name}: neither index.json nor a task-structure file next to the folder says "
            "whether the references are natural images or feature visualizations; give the "
            "reference type (--reference-type natural|synthetic, or 'Reference images' in the "
            "console)"
        )
    trials_dir = root / "trials"
    if not trials_dir.is_dir():
        raise ManifestInvalid("task folder has no trials/ directory")
    found = sorted(
        (int(m.group(1)), p) for p in trials_dir.iterdir() if (m := _TRIAL_DIR.match(p.name))
    )
    if len(found) != n_trials:
        raise ManifestInvalid(f"index.json says n_trials={n_trials}, trials/ holds {len(found)}")
    reader = _Reader(root)
    units: list[Unit] = []
    numberings: set[str] = set()
    for k, trial_dir in found:
        base = f"trials/{trial_dir.name}"
        if not (trial_dir / "references").is_dir():
            raise ManifestInvalid(f"{base} has no references/ folder")
        refs = _indexed_files(reader, trial_dir / "references", f"{base}/references")
        max_q = reader.add(f"{base}/queries/max.png")
        min_q = reader.add(f"{base}/queries/min.png")
        query_hashes = {reader.files[max_q].sha256, reader.files[min_q].sha256}
        # IMI's natural tasks may copy a whole batch folder into references/, the queries
        # included. Showing them would give the answer away (IMI's catch trials do that on
        # purpose, so they keep theirs).
        copies = {
            rel
            for side in ("max", "min")
            for rel in refs[side].values()
            if k not in catch and reader.digest(rel) in query_hashes
        }
        for rel in sorted(copies):
            reader.drop(rel, "same image as a query of this trial")
        kept = {
            side: {i: rel for i, rel in refs[side].items() if rel not in copies}
            for side in ("max", "min")
        }
        numbering: Literal["old", "new"]
        if options.numbering != "auto":
            numbering = options.numbering
        else:
            # The older numbering left out the queries max_9 and min_0: min files are 1..9.
            old = 0 not in refs["min"] and 9 in refs["min"] and 9 not in refs["max"]
            numbering = "old" if old else "new"
        numberings.add(numbering)
        ordered: dict[str, list[str]] = {}
        for side in ("max", "min"):
            shown, never = imi_display_order(kept[side], side, numbering)
            # Files IMI's code never shows only fill in for dropped query copies.
            listed = [kept[side][i] for i in (*shown, *never)]
            if len(listed) < n_refs:
                raise ManifestInvalid(
                    f"{base}: {len(listed)} usable {side} references, index.json says {n_refs}"
                )
            ordered[side] = [reader.add(rel) for rel in listed[:n_refs]]
            for rel in listed[n_refs:]:
                index = int(rel.rsplit("_", 1)[1].removesuffix(".png"))
                reader.drop(
                    rel,
                    f"IMI's task code ({numbering} numbering) never shows it"
                    if index in never
                    else f"beyond n_reference_images={n_refs}",
                )
        if ref_kind == "natural":
            natural = Natural(
                batches=(
                    NaturalBatch(
                        batch=1,
                        max_query=Exemplar(path=max_q),
                        min_query=Exemplar(path=min_q),
                        max_references=tuple(Exemplar(path=p) for p in ordered["max"]),
                        min_references=tuple(Exemplar(path=p) for p in ordered["min"]),
                    ),
                )
            )
            synthetic = None
        else:
            natural = Natural(
                batches=(
                    NaturalBatch(
                        batch=1, max_query=Exemplar(path=max_q), min_query=Exemplar(path=min_q)
                    ),
                )
            )
            synthetic = Synthetic(
                max_references=tuple(SyntheticImage(path=p) for p in ordered["max"]),
                min_references=tuple(SyntheticImage(path=p) for p in ordered["min"]),
            )
        roles: tuple[Any, ...] = ("catch",) if k in catch else ("main",)
        units.append(
            Unit(
                id=f"trial_{k}",
                layer="imi",
                channel=k,
                label=f"{task_name} trial {k}",
                roles=(options.role,) if options.role else roles,
                natural=natural,
                synthetic=synthetic,
            )
        )
    manifest = _manifest(
        reader,
        units,
        set_id=slug(task_name, "imi-task"),
        title=task_name,
        provenance={
            "imported_from": "imi-task-folder",
            "index": index,
            "reference_type": ref_kind,
            "reference_type_from": stated_by or "declared",
            "numbering": sorted(numberings),
        },
    )
    return manifest, reader.skipped


# --- unit-folder trees (IMI resources, the paper's stimulus tree) ---------------------------------

_CHANNEL_DIR = re.compile(r"^channel_(\d+)$")
_BATCH_DIR = re.compile(r"^batch_(\d+)$")
_KERNEL_DIR = re.compile(r"^kernel_size_(\d+)$")
_PAPER_LAYER_DIR = re.compile(r"^layer_(\w+)$")
_MIXED = re.compile(r"^(mixed[345][a-e])(?:_pre_relu)?$")
_MIXED_BRANCH = re.compile(r"^(mixed[345][a-e])_(1x1|3x3|5x5|pool_reduce)_pre_relu(?:_conv)?$")
KIND_DIRS = {"natural_images": "natural", "optimized_images": "synthetic"}


@dataclass(frozen=True)
class _UnitName:
    id: str
    layer: str
    channel: int
    branch: Literal["1x1", "3x3", "5x5", "pool"] | None
    label: str


def _imi_unit_name(parts: tuple[str, ...]) -> _UnitName:
    """Layer and channel of `<layer>/channel_<c>` where the names say them."""
    layer_dir, channel_dir = parts[-2], parts[-1]
    c = int(_CHANNEL_DIR.match(channel_dir).group(1))  # type: ignore[union-attr]
    label = f"{layer_dir}/{channel_dir}"
    if m := _MIXED.match(layer_dir):
        layer = m.group(1)
        branch = next(
            (BRANCHES[b] for b, (lo, hi) in enumerate(INCEPTION_BRANCHES[layer]) if lo <= c < hi),
            None,
        )
        return _UnitName(f"{layer}:{c}", layer, c, branch, label)
    if m := _MIXED_BRANCH.match(layer_dir):
        # A branch conv counts its own channels; the set stores the index in the concatenation.
        layer, b = m.group(1), BRANCHES.index(_BRANCH_SUFFIX[m.group(2)])
        lo, hi = INCEPTION_BRANCHES[layer][b]
        if lo + c >= hi:
            raise ManifestInvalid(f"{label}: {layer} {BRANCHES[b]} has only {hi - lo} channels")
        return _UnitName(f"{layer}:{lo + c}", layer, lo + c, BRANCHES[b], label)
    # Hand-named units (IMI's catch-trial resources): the names say nothing about the network.
    return _UnitName(label, layer_dir, c, None, label)


def _feature_map_table(root: Path) -> dict[tuple[str, str, str], tuple[str, int, str]]:
    """The paper's layer_folder_mapping*.csv, when the tree carries one: folder numbers ->
    (layer, feature map, branch)."""
    table: dict[tuple[str, str, str], tuple[str, int, str]] = {}
    for path in sorted(root.rglob("layer_folder_mapping*.csv")):
        lines = path.read_text(encoding="utf-8").splitlines()[1:]  # first line is a caption
        for row in csv.DictReader(lines):
            try:
                key = (row["layer_number"], row["kernel_size_number"], row["channel_number"])
                table[key] = (row["layer_name"], int(row["feature_map_number"]), row["kernel_size"])
            except (KeyError, ValueError, TypeError):
                raise ManifestInvalid(f"{path.name}: not a layer_folder_mapping table") from None
    return table


def _paper_unit_name(
    parts: tuple[str, ...], table: dict[tuple[str, str, str], tuple[str, int, str]]
) -> _UnitName:
    """`layer_<l>/kernel_size_<k>/channel_<c>`: folder numbers; the feature map comes from the
    tree's layer_folder_mapping csv (the folders number units, not channels)."""
    layer_dir, kernel_dir, channel_dir = parts[-3:]
    lnum = _PAPER_LAYER_DIR.match(layer_dir).group(1)  # type: ignore[union-attr]
    knum = _KERNEL_DIR.match(kernel_dir).group(1)  # type: ignore[union-attr]
    cnum = _CHANNEL_DIR.match(channel_dir).group(1)  # type: ignore[union-attr]
    label = f"{layer_dir}/{kernel_dir}/{channel_dir}"
    branch = BRANCHES[int(knum)] if int(knum) < len(BRANCHES) else None
    if (lnum, knum, cnum) in table:
        layer, fmap, kernel = table[(lnum, knum, cnum)]
        b = kernel if kernel in BRANCHES else branch
        return _UnitName(f"{layer}:{fmap}", layer, fmap, b, label)
    layer = INCEPTION_LAYERS[int(lnum)] if lnum.isdigit() and int(lnum) < 9 else layer_dir
    return _UnitName(label, layer, int(cnum), branch, f"{label} (feature map not given)")


def find_unit_dirs(root: Path) -> list[Path]:
    """Folders that hold natural_images/ or optimized_images/ (a unit each)."""
    found = {p.parent for name in KIND_DIRS for p in root.rglob(name) if p.is_dir()}
    return sorted(found)


def _is_paper_unit(parts: tuple[str, ...]) -> bool:
    return (
        len(parts) >= 3
        and bool(_CHANNEL_DIR.match(parts[-1]))
        and bool(_KERNEL_DIR.match(parts[-2]))
        and bool(_PAPER_LAYER_DIR.match(parts[-3]))
    )


def natural_query_and_references(
    files: dict[str, dict[int, str]], paper: bool
) -> tuple[str, str, list[str], list[str]]:
    """A batch folder's queries and references, most extreme first (docs/stimulus_set_v1.md).

    The paper (generate_stimuli/save_natural_stimuli.py) numbers both sides by ascending
    activation: max query = the highest number, min query = the lowest, references max_8, max_7,
    ... and min_1, min_2, .... IMI (stimuli_generation/extract_exemplars.py) reverses the min
    side: on both sides number 9 is the query and 8, 7, ..., 0 the references.
    """
    maxes = sorted(files["max"], reverse=True)
    mins = sorted(files["min"], reverse=not paper)
    return (
        files["max"][maxes[0]],
        files["min"][mins[0]],
        [files["max"][i] for i in maxes[1:]],
        [files["min"][i] for i in mins[1:]],
    )


def unit_tree_units(
    root: Path, unit_dirs: list[Path], options: ImportOptions
) -> tuple[StimulusManifest, list[Skipped], str]:
    """Convert a tree of unit folders (IMI resources or the paper's tree) into a v1 manifest.

    Returns:
        The manifest, the skipped files, and the source format ("imi-units" | "paper-tree").

    Raises:
        ManifestInvalid: a unit without natural queries, a name that cannot be read, ...
    """
    reader = _Reader(root)
    paper = any(_is_paper_unit(d.relative_to(root).parts) for d in unit_dirs)
    table = _feature_map_table(root) if paper else {}
    units: list[Unit] = []
    seen: set[str] = set()
    for unit_dir in unit_dirs:
        parts = unit_dir.relative_to(root).parts or (root.name,)
        rel = "/".join(unit_dir.relative_to(root).parts)
        prefix = f"{rel}/" if rel else ""
        if _is_paper_unit(parts):
            name = _paper_unit_name(parts, table)
        elif len(parts) >= 2 and _CHANNEL_DIR.match(parts[-1]):
            name = _imi_unit_name(parts)
        else:
            raise ManifestInvalid(
                f"{rel or root.name}: a unit folder must be named channel_<c> inside its layer "
                f"folder; supported layouts: {'; '.join(SUPPORTED_LAYOUTS)}"
            )
        if name.id in seen:
            name = _UnitName(rel, name.layer, name.channel, name.branch, name.label)
        seen.add(name.id)
        batches: list[NaturalBatch] = []
        nat_dir = unit_dir / "natural_images"
        if nat_dir.is_dir():
            batch_dirs = sorted(
                (int(m.group(1)), p)
                for p in nat_dir.iterdir()
                if p.is_dir() and (m := _BATCH_DIR.match(p.name))
            )
            folders = batch_dirs or [(1, nat_dir)]
            for number, folder in folders:
                frel = f"{prefix}{folder.relative_to(unit_dir).as_posix()}"
                files = _indexed_files(reader, folder, frel)
                if not files["max"] or not files["min"]:
                    raise ManifestInvalid(f"{frel}: no max_<i>.png and min_<i>.png images")
                max_q, min_q, max_refs, min_refs = natural_query_and_references(files, paper)
                batches.append(
                    NaturalBatch(
                        batch=number,
                        max_query=Exemplar(path=reader.add(max_q)),
                        min_query=Exemplar(path=reader.add(min_q)),
                        max_references=tuple(Exemplar(path=reader.add(p)) for p in max_refs),
                        min_references=tuple(Exemplar(path=reader.add(p)) for p in min_refs),
                    )
                )
        if not batches:
            raise ManifestInvalid(
                f"{rel}: no natural_images/ (the queries of every trial are natural images)"
            )
        synthetic = None
        opt_dir = unit_dir / "optimized_images"
        if opt_dir.is_dir():
            files = _indexed_files(reader, opt_dir, f"{prefix}optimized_images")
            ordered: dict[str, list[str]] = {}
            for side in ("max", "min"):
                never: list[int]
                if paper:
                    # Lucid optimizes the batch jointly: the file number is no rank.
                    shown, never = sorted(files[side]), []
                else:
                    shown, never = imi_display_order(files[side], side, "new")
                for i in never:
                    reader.skip(files[side][i], "IMI's task code never shows it")
                ordered[side] = [reader.add(files[side][i]) for i in shown]
            if ordered["max"]:
                synthetic = Synthetic(
                    max_references=tuple(SyntheticImage(path=p) for p in ordered["max"]),
                    min_references=tuple(SyntheticImage(path=p) for p in ordered["min"]),
                )
        units.append(
            Unit(
                id=name.id,
                layer=name.layer,
                channel=name.channel,
                branch=name.branch,
                label=name.label,
                roles=(options.role,) if options.role else ("main",),  # type: ignore[arg-type]
                natural=Natural(batches=tuple(batches)),
                synthetic=synthetic,
            )
        )
    source_format = "paper-tree" if paper else "imi-units"
    manifest = _manifest(
        reader,
        units,
        set_id=slug(root.name),
        title=root.name,
        provenance={"imported_from": source_format, "feature_map_table": bool(table)},
    )
    return manifest, reader.skipped, source_format


# --- layout detection and merging ---------------------------------------------------------------


def _found(path: Path) -> str:
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir())
    shown = ", ".join(names[:12]) + (f" (and {len(names) - 12} more)" if len(names) > 12 else "")
    return shown or "nothing"


def load_source(path: Path, options: ImportOptions | None = None) -> LoadedSet:
    """Validate one source folder of any supported layout.

    Raises:
        ManifestInvalid: the set is broken, or its layout is not one of SUPPORTED_LAYOUTS.
    """
    options = options or ImportOptions()
    if options.role is not None and options.role not in ROLES:
        raise ManifestInvalid(f"unknown role {options.role!r} (one of {', '.join(ROLES)})")
    if not path.is_dir():
        raise ManifestInvalid(f"{path} is not a folder")
    if (path / "manifest.json").is_file():
        manifest = load_manifest(path)
        if options.role:
            manifest = manifest.model_copy(
                update={
                    "units": tuple(
                        u.model_copy(update={"roles": (options.role,)}) for u in manifest.units
                    )
                }
            )
        return LoadedSet(manifest, path, "v1")
    if (path / "index.json").is_file():
        manifest, skipped = imi_task_units(path, options)
        return LoadedSet(manifest, path, "imi", skipped=tuple(s.__dict__ for s in skipped))
    unit_dirs = find_unit_dirs(path)
    if unit_dirs:
        manifest, skipped, fmt = unit_tree_units(path, unit_dirs, options)
        return LoadedSet(manifest, path, fmt, skipped=tuple(s.__dict__ for s in skipped))
    # A zip of one top folder, or a folder holding one set folder.
    entries = [p for p in path.iterdir() if not p.name.startswith(".")]
    if len(entries) == 1 and entries[0].is_dir():
        return load_source(entries[0], options)
    raise ManifestInvalid(
        f"{path.name or path}: not a supported stimulus layout. Supported: "
        + "; ".join(SUPPORTED_LAYOUTS)
        + f". Found: {_found(path)}"
    )


def _prefixed(value: Any, prefix: str) -> Any:
    if isinstance(value, dict):
        return {
            k: (f"{prefix}/{v}" if k == "path" and isinstance(v, str) else _prefixed(v, prefix))
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [_prefixed(v, prefix) for v in value]
    return value


def merge_sources(
    loaded: Sequence[LoadedSet],
    *,
    set_id: str | None = None,
    names: Sequence[str] | None = None,
) -> LoadedSet:
    """One set from several sources: each source's files go below a folder named after it.

    Args:
        loaded: the validated sources.
        set_id: the merged set's id [the first source's].
        names: a name per source [its folder's name]; repeated names get a suffix.

    Raises:
        ManifestInvalid: the sources' image sizes differ.
    """
    if len(loaded) == 1:
        return loaded[0]
    unique: list[str] = []
    for i, one in enumerate(loaded):
        name = slug(names[i] if names else one.root.name)
        while name in unique:
            name = f"{name}-{i}"
        unique.append(name)
    names = unique
    sizes = {one.manifest.image_size_px for one in loaded}
    if len(sizes) > 1:
        raise ManifestInvalid(f"the folders hold images of different sizes: {sorted(sizes)} px")
    files: dict[str, Any] = {}
    units: list[dict[str, Any]] = []
    unit_ids = [u.id for one in loaded for u in one.manifest.units]
    for name, one in zip(names, loaded, strict=True):
        for rel, entry in one.manifest.files.items():
            files[f"{name}/{rel}"] = entry.model_dump()
        for unit in one.manifest.units:
            data = _prefixed(unit.model_dump(), name)
            if unit_ids.count(unit.id) > 1:
                data["id"] = f"{name}/{unit.id}"
            units.append(data)
    first = loaded[0].manifest
    manifest = StimulusManifest.model_validate(
        {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "id": set_id or first.id,
            "title": " + ".join(one.manifest.title or one.manifest.id for one in loaded),
            "created_at": datetime.now(UTC),
            "image_size_px": first.image_size_px,
            "provenance": {
                "imported_from": "several folders",
                "sources": [
                    {"folder": name, "format": one.source_format, **one.manifest.provenance}
                    for name, one in zip(names, loaded, strict=True)
                ],
            },
            "files": files,
            "units": units,
        }
    )
    validate_manifest(manifest, loaded[0].root, check_files=False)
    formats = {one.source_format for one in loaded}
    skipped = tuple(
        {**s, "path": f"{name}/{s['path']}"}
        for name, one in zip(names, loaded, strict=True)
        for s in one.skipped
    )
    return LoadedSet(
        manifest,
        loaded[0].root,
        formats.pop() if len(formats) == 1 else "mixed",
        skipped=skipped,
        roots=tuple((name, one.root) for name, one in zip(names, loaded, strict=True)),
    )


def apply_role_map(loaded: LoadedSet, roles: dict[str, Any]) -> LoadedSet:
    """Give units the roles of a mapping `{unit id or label: role | [roles]}`.

    Raises:
        ManifestInvalid: a key names no unit, or a role is unknown.
    """
    by_key = {}
    for unit in loaded.manifest.units:
        by_key[unit.id] = unit.id
        if unit.label:
            by_key.setdefault(unit.label, unit.id)
    wanted: dict[str, tuple[str, ...]] = {}
    for key, value in roles.items():
        if key not in by_key:
            raise ManifestInvalid(f"role map: no unit {key!r} in the set")
        listed = (value,) if isinstance(value, str) else tuple(value)
        for role in listed:
            if role not in ROLES:
                raise ManifestInvalid(f"role map: unknown role {role!r} for {key!r}")
        wanted[by_key[key]] = listed
    units = tuple(
        u.model_copy(update={"roles": wanted[u.id]}) if u.id in wanted else u
        for u in loaded.manifest.units
    )
    manifest = StimulusManifest.model_validate(
        loaded.manifest.model_copy(update={"units": units}).model_dump(by_alias=True)
    )
    return LoadedSet(
        manifest, loaded.root, loaded.source_format, skipped=loaded.skipped, roots=loaded.roots
    )


@dataclass(frozen=True)
class UnitReport:
    id: str
    label: str
    layer: str
    channel: int
    kinds: tuple[str, ...]
    roles: tuple[str, ...]
    natural_batches: tuple[int, ...]
    max_references: dict[str, int]
    min_references: dict[str, int]


def unit_reports(manifest: StimulusManifest) -> list[UnitReport]:
    """Per unit: what an experimenter checks after an import."""
    out = []
    for unit in manifest.units:
        batches = unit.natural.batches if unit.natural else ()
        nat = [b for b in batches if b.max_references or b.min_references]
        kinds = (("natural",) if nat else ()) + (("synthetic",) if unit.synthetic else ())
        max_refs: dict[str, int] = {}
        min_refs: dict[str, int] = {}
        if nat:
            max_refs["natural"] = min(len(b.max_references) for b in nat)
            min_refs["natural"] = min(len(b.min_references) for b in nat)
        if unit.synthetic:
            max_refs["synthetic"] = len(unit.synthetic.max_references)
            min_refs["synthetic"] = len(unit.synthetic.min_references)
        out.append(
            UnitReport(
                id=unit.id,
                label=unit.label or unit.id,
                layer=unit.layer,
                channel=unit.channel,
                kinds=kinds,
                roles=tuple(unit.roles),
                natural_batches=tuple(b.batch for b in batches),
                max_references=max_refs,
                min_references=min_refs,
            )
        )
    return out


def format_report(manifest: StimulusManifest, skipped: Iterable[dict[str, str]]) -> list[str]:
    """The import report as text lines (CLI output)."""
    lines = []
    for r in unit_reports(manifest):
        refs = ", ".join(
            f"{kind} {r.max_references[kind]}/{r.min_references[kind]}" for kind in r.kinds
        )
        lines.append(
            f"  {r.label}: layer {r.layer}, channel {r.channel}, "
            f"kinds {'+'.join(r.kinds) or 'queries only'}, roles {','.join(r.roles)}, "
            f"references max/min per side: {refs or 'none'}"
        )
    for s in skipped:
        lines.append(f"  skipped {s['path']}: {s['reason']}")
    return lines
