"""Read and validate stimulus sets (format v1; other layouts in app/stimulus_sources.py); no DB.

The manifest schema is documented in docs/stimulus_set_v1.md; `stimuli_builder` writes it with its
own model, this module reads it with this one (the file is the only contract between the two).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Literal

from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from app.errors import ManifestInvalid
from app.nesting import TooDeep, loads_json
from app.schedule import Catalog, UnitInfo

if TYPE_CHECKING:
    from app.stimulus_sources import ImportOptions

SCHEMA = "psychvis.stimulus_set"
SCHEMA_VERSION = 1
SET_ID_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,79}$"
MAX_ZIP_MEMBERS = 200_000
MAX_ZIP_TOTAL_BYTES = 2 * 1024**3
"""Uncompressed bytes one import may write (`PSYCHVIS_MAX_IMPORT_BYTES`): the largest real sets
(IMI's, a few hundred MB of PNGs) fit several times over."""
MAX_ZIP_RATIO = 50
"""A member that inflates more than this many times its compressed size is treated as a bomb
(PNG, JPEG and WebP barely compress; JSON and CSV inflate 5 to 15 times)."""
ZIP_RATIO_FREE_BYTES = 64 * 1024
"""Members up to this size may inflate more (small text files)."""
MAX_IMAGE_PIXELS = 4096 * 4096

ROLES = ("main", "practice", "catch", "intuitiveness")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FileEntry(_Model):
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int | None = Field(default=None, ge=0)


class Exemplar(_Model):
    path: str
    source: str | None = None
    rank: int | None = Field(default=None, ge=1)
    activation: float | None = None


class NaturalBatch(_Model):
    batch: int = Field(ge=0)
    max_query: Exemplar
    min_query: Exemplar
    max_references: tuple[Exemplar, ...] = Field(default=(), max_length=50)
    min_references: tuple[Exemplar, ...] = Field(default=(), max_length=50)

    def paths(self) -> list[str]:
        refs = [e.path for e in (*self.max_references, *self.min_references)]
        return [self.max_query.path, self.min_query.path, *refs]


class Natural(_Model):
    batches: tuple[NaturalBatch, ...]


class SyntheticImage(_Model):
    path: str
    objective: float | None = None


class Synthetic(_Model):
    max_references: tuple[SyntheticImage, ...] = Field(min_length=1, max_length=50)
    min_references: tuple[SyntheticImage, ...] = Field(default=(), max_length=50)


class Unit(_Model):
    id: str = Field(min_length=1, max_length=120)
    layer: str = Field(min_length=1, max_length=80)
    channel: int = Field(ge=0)
    branch: Literal["1x1", "3x3", "5x5", "pool"] | None = None
    label: str | None = Field(default=None, max_length=200)
    hand_picked: bool = False
    roles: tuple[Literal["main", "practice", "catch", "intuitiveness"], ...] = ("main",)
    natural: Natural | None = None
    synthetic: Synthetic | None = None

    def paths(self) -> list[str]:
        out: list[str] = []
        if self.natural:
            for batch in self.natural.batches:
                out.extend(batch.paths())
        if self.synthetic:
            out.extend(
                s.path for s in (*self.synthetic.max_references, *self.synthetic.min_references)
            )
        return out


class StimulusManifest(_Model):
    """manifest.json of a stimulus set, format v1."""

    model_config = ConfigDict(extra="allow", frozen=True)

    schema_: Literal["psychvis.stimulus_set"] = Field(alias="schema")
    schema_version: int
    id: str = Field(pattern=SET_ID_PATTERN)
    title: str | None = Field(default=None, max_length=200)
    created_at: datetime | None = None
    image_size_px: int = Field(default=224, ge=8, le=2048)
    provenance: dict[str, Any] = Field(default_factory=dict)
    files: dict[str, FileEntry]
    units: tuple[Unit, ...] = Field(min_length=1)

    @field_validator("schema_version")
    @classmethod
    def _known_version(cls, value: int) -> int:
        if value != SCHEMA_VERSION:
            raise ValueError(
                f"unsupported schema_version {value} (this server reads {SCHEMA_VERSION})"
            )
        return value


@dataclass(frozen=True)
class LoadedSet:
    """A validated stimulus set on disk: its manifest and root folder.

    source_format: "v1", "imi" (task folder), "imi-units", "paper-tree" or "mixed".
    skipped: files of the source left out, as {"path", "reason"}.
    roots: for a set merged from several folders, (first path part, folder) of each.
    """

    manifest: StimulusManifest
    root: Path
    source_format: str
    skipped: tuple[dict[str, str], ...] = ()
    roots: tuple[tuple[str, Path], ...] = ()

    def file_path(self, rel: str) -> Path:
        """Where the manifest's file `rel` lies on disk."""
        for name, root in self.roots:
            if rel.startswith(f"{name}/"):
                return root / rel.removeprefix(f"{name}/")
        return self.root / rel


def _format_validation_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"])
        parts.append(f"{loc}: {err['msg']}")
    more = f" (and {exc.error_count() - 5} more)" if exc.error_count() > 5 else ""
    return "; ".join(parts) + more


def _safe_member(root: Path, rel: str) -> Path:
    pure = PurePosixPath(rel)
    if pure.is_absolute() or ".." in pure.parts or "\\" in rel or rel.startswith("~"):
        raise ManifestInvalid(f"file path {rel!r} leaves the stimulus set folder")
    path = root.joinpath(*pure.parts)
    try:
        info = path.lstat()
    except FileNotFoundError:
        raise ManifestInvalid(f"file {rel!r} is listed but missing") from None
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISREG(info.st_mode):
        raise ManifestInvalid(f"file {rel!r} is not a regular file")
    return path


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


IMAGE_FORMATS = ("PNG", "JPEG", "WEBP")
"""What a stimulus image may be, by its content (whatever its file name says)."""


def check_image(path: Path, rel: str, size_px: int) -> None:
    """Raise ManifestInvalid unless `path` decodes as a `size_px` square PNG, JPEG or WebP."""
    try:
        with Image.open(path, formats=IMAGE_FORMATS) as img:
            if img.width * img.height > MAX_IMAGE_PIXELS:
                raise ManifestInvalid(f"image {rel!r} is too large ({img.width}x{img.height})")
            img.load()
            if img.size != (size_px, size_px):
                raise ManifestInvalid(
                    f"image {rel!r} is {img.width}x{img.height}, expected {size_px}x{size_px}"
                )
    except UnidentifiedImageError:
        raise ManifestInvalid(
            f"image {rel!r} cannot be decoded as a PNG, JPEG or WebP image (by content)"
        ) from None
    except (OSError, Image.DecompressionBombError):
        raise ManifestInvalid(f"image {rel!r} cannot be decoded") from None


def validate_manifest(manifest: StimulusManifest, root: Path, *, check_files: bool = True) -> None:
    """Check the rules of docs/stimulus_set_v1.md that pydantic alone can't.

    Raises:
        ManifestInvalid: naming the first unit or file that breaks a rule.
    """
    seen: set[str] = set()
    for unit in manifest.units:
        if unit.id in seen:
            raise ManifestInvalid(f"unit id {unit.id!r} appears twice")
        seen.add(unit.id)
        if unit.natural is None or not unit.natural.batches:
            raise ManifestInvalid(
                f"unit {unit.id!r} has no natural batch (queries are natural images)"
            )
        batch_numbers = [b.batch for b in unit.natural.batches]
        if len(set(batch_numbers)) != len(batch_numbers):
            raise ManifestInvalid(f"unit {unit.id!r} repeats a natural batch number")
        for batch in unit.natural.batches:
            paths = batch.paths()
            if len(set(paths)) != len(paths):
                raise ManifestInvalid(
                    f"unit {unit.id!r} batch {batch.batch}: queries and references overlap"
                )
        for rel in unit.paths():
            if rel not in manifest.files:
                raise ManifestInvalid(
                    f"unit {unit.id!r} uses {rel!r}, which is not listed in files"
                )
    if not check_files:
        return
    for rel, entry in manifest.files.items():
        path = _safe_member(root, rel)
        if sha256_file(path) != entry.sha256:
            raise ManifestInvalid(f"file {rel!r} does not match its sha256")
        check_image(path, rel, manifest.image_size_px)


def load_manifest(path: Path | str, *, check_files: bool = True) -> StimulusManifest:
    """Load and validate a v1 stimulus set folder (with manifest.json).

    Args:
        path: the set's root folder.
        check_files: also hash and decode every image (off only for quick listings).

    Returns:
        The validated manifest.

    Raises:
        ManifestInvalid: the set is broken; the message names the problem.
    """
    root = Path(path)
    manifest_path = root / "manifest.json"
    if not manifest_path.is_file():
        raise ManifestInvalid(f"{root.name} has no manifest.json")
    try:
        raw = loads_json(manifest_path.read_text(encoding="utf-8"))
    except TooDeep as exc:
        raise ManifestInvalid(f"manifest.json is {exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ManifestInvalid(f"manifest.json is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ManifestInvalid("manifest.json must hold a JSON object")
    if raw.get("schema") != SCHEMA:
        raise ManifestInvalid(f"manifest.json: schema must be {SCHEMA!r}")
    try:
        manifest = StimulusManifest.model_validate(raw)
    except ValidationError as exc:
        raise ManifestInvalid(f"manifest.json: {_format_validation_error(exc)}") from None
    validate_manifest(manifest, root, check_files=check_files)
    return manifest


def load_set(path: Path, options: ImportOptions | None = None) -> LoadedSet:
    """Validate a stimulus set at `path` (a folder) in any supported layout.

    The readers of layouts other than v1 live in app/stimulus_sources.py.

    Raises:
        ManifestInvalid: the set is broken or its layout unsupported (the message lists the
            supported layouts).
    """
    from app.stimulus_sources import load_source

    return load_source(path, options)


@contextmanager
def extracted_zip(zip_path: Path, max_total_bytes: int = MAX_ZIP_TOTAL_BYTES) -> Iterator[Path]:
    """Extract a .zip into a temporary folder safely (no traversal, links, or bombs).

    Raises:
        ManifestInvalid: the archive is unsafe or unreadable.
    """
    tmp = Path(tempfile.mkdtemp(prefix="psychvis-zip-"))
    try:
        try:
            archive = zipfile.ZipFile(zip_path)
        except (zipfile.BadZipFile, OSError):
            raise ManifestInvalid("not a readable zip file") from None
        with archive:
            members = archive.infolist()
            if len(members) > MAX_ZIP_MEMBERS:
                raise ManifestInvalid(f"zip holds {len(members)} entries (limit {MAX_ZIP_MEMBERS})")
            # Checked before anything is written: the declared sizes (the loop below stops at
            # them, so a header that lies gains nothing).
            declared = sum(info.file_size for info in members)
            if declared > max_total_bytes:
                raise ManifestInvalid(
                    f"zip inflates to {declared} bytes, over the limit of {max_total_bytes}"
                )
            total = 0
            for info in members:
                name = info.filename
                pure = PurePosixPath(name)
                if pure.is_absolute() or ".." in pure.parts or "\\" in name or ":" in name:
                    raise ManifestInvalid(f"zip entry {name!r} leaves the extraction folder")
                mode = info.external_attr >> 16
                if stat.S_ISLNK(mode):
                    raise ManifestInvalid(f"zip entry {name!r} is a symbolic link")
                if info.is_dir():
                    (tmp / pure).mkdir(parents=True, exist_ok=True)
                    continue
                if (
                    info.file_size > MAX_ZIP_RATIO * max(info.compress_size, 1)
                    and info.file_size > ZIP_RATIO_FREE_BYTES
                ):
                    raise ManifestInvalid(f"zip entry {name!r} inflates suspiciously (zip bomb?)")
                target = tmp / pure
                target.parent.mkdir(parents=True, exist_ok=True)
                written = 0
                with archive.open(info) as src, target.open("wb") as dst:
                    while chunk := src.read(1 << 20):
                        written += len(chunk)
                        total += len(chunk)
                        # Headers can lie: count the bytes really inflated.
                        if written > info.file_size or total > max_total_bytes:
                            raise ManifestInvalid(
                                "zip inflates beyond its declared size or the limit"
                            )
                        dst.write(chunk)
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def catalog_from_manifest(manifest: StimulusManifest) -> Catalog:
    """What designs may know about a set's units (no image data)."""
    units = []
    for unit in manifest.units:
        batches = unit.natural.batches if unit.natural else ()
        n_nat = min((min(len(b.max_references), len(b.min_references)) for b in batches), default=0)
        n_syn = (
            min(len(unit.synthetic.max_references), len(unit.synthetic.min_references))
            if unit.synthetic
            else 0
        )
        units.append(
            UnitInfo(
                id=unit.id,
                layer=unit.layer,
                channel=unit.channel,
                branch=unit.branch,
                hand_picked=unit.hand_picked,
                roles=tuple(unit.roles),
                natural_batches=tuple(b.batch for b in batches),
                n_natural_references=n_nat,
                n_synthetic_references=n_syn,
            )
        )
    return Catalog(stimulus_set=manifest.id, units=tuple(units))
