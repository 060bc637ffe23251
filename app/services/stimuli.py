"""Import validated stimulus sets into the database and the blob store; list and resolve them."""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.cache import LruCache
from app.errors import Conflict, InvalidInput, ManifestInvalid, NotFound
from app.models import StimulusImage, StimulusSet, StimulusUnit
from app.schedule import Catalog
from app.services.blobs import BlobStore
from app.stimuli import (
    MAX_ZIP_TOTAL_BYTES,
    ROLES,
    SET_ID_PATTERN,
    LoadedSet,
    StimulusManifest,
    catalog_from_manifest,
    extracted_zip,
    load_set,
)
from app.stimulus_sources import REFERENCE_TYPES, ImportOptions, apply_role_map, merge_sources
from app.stimulus_sources import slug as folder_slug
from app.tasks import image_url

logger = logging.getLogger(__name__)

UPLOAD_CHUNK = 1024 * 1024


def import_stimulus_set(
    session: Session,
    source: Path,
    blobs: BlobStore,
    *,
    set_id: str | None = None,
    options: ImportOptions | None = None,
    max_total_bytes: int = MAX_ZIP_TOTAL_BYTES,
) -> StimulusSet:
    """Validate a set (folder or .zip, any supported layout) and store it; nothing is stored if
    it is broken.

    Args:
        session: the caller commits.
        source: a folder or a .zip file.
        blobs: where the served encodings go (content-addressed; shared between sets).
        set_id: overrides the set's id (the name it gets in the app).
        options: what the experimenter declares about the folder (reference type, role).
        max_total_bytes: the most a zip may inflate to (PSYCHVIS_MAX_IMPORT_BYTES).

    Returns:
        The new StimulusSet row (flushed).

    Raises:
        ManifestInvalid: the set is broken (message names the problem).
        Conflict: a set with that id exists already.
    """
    return import_stimulus_sources(
        session, [(source, options)], blobs, set_id=set_id, max_total_bytes=max_total_bytes
    )


def import_stimulus_sources(
    session: Session,
    sources: Sequence[tuple[Path, ImportOptions | None]],
    blobs: BlobStore,
    *,
    set_id: str | None = None,
    role_map: dict[str, Any] | None = None,
    max_total_bytes: int = MAX_ZIP_TOTAL_BYTES,
) -> StimulusSet:
    """Assemble one set from several folders or zips (each with its own options) and store it.

    Args:
        session: the caller commits.
        sources: (folder or .zip, options) per source; units keep their source's roles unless
            the options or `role_map` give others.
        blobs: where the served encodings go.
        set_id: the set's name in the app [the first source's id].
        role_map: `{unit id or label: role | [roles]}` applied last.
        max_total_bytes: the most a zip may inflate to.

    Returns:
        The new StimulusSet row (flushed); its manifest's provenance lists skipped files.

    Raises:
        ManifestInvalid: a source is broken, or the sources do not fit together.
        Conflict: a set with that id exists already.
    """
    if not sources:
        raise ManifestInvalid("no stimulus folder given")
    with ExitStack() as stack:
        loaded = []
        names: list[str] = []
        for source, options in sources:
            if not source.exists():
                raise ManifestInvalid(f"{source.name} does not exist")
            folder = source
            if source.is_file():
                if source.suffix.lower() != ".zip":
                    raise ManifestInvalid(f"{source.name} is neither a folder nor a .zip file")
                folder = stack.enter_context(extracted_zip(source, max_total_bytes))
            try:
                loaded.append(load_set(folder, options))
            except ManifestInvalid as exc:
                # Messages name files inside the set, never where the server keeps them.
                detail = exc.detail.replace(str(folder), source.name)
                detail = detail.replace(folder.name, source.name)
                raise ManifestInvalid(detail) from None
            # An extracted zip's folder has a random name: name the source after the zip.
            names.append(folder_slug(source.stem if source.is_file() else source.name))
        merged = merge_sources(loaded, set_id=set_id, names=names)
        if role_map:
            merged = apply_role_map(merged, role_map)
        return _import_loaded(session, merged, blobs, set_id)


def _import_loaded(
    session: Session, loaded: LoadedSet, blobs: BlobStore, set_id: str | None
) -> StimulusSet:
    manifest = loaded.manifest
    name = set_id or manifest.id
    if not re.match(SET_ID_PATTERN, name):
        # The name becomes part of console URLs and file names (docs/stimulus_set_v1.md).
        raise InvalidInput(f"a stimulus set's name must match {SET_ID_PATTERN}")
    if session.scalar(select(StimulusSet.id).where(StimulusSet.slug == name)) is not None:
        raise Conflict(f"a stimulus set named {name!r} exists already")
    stored = manifest.model_dump(mode="json", by_alias=True)
    if loaded.skipped:
        stored["provenance"]["skipped"] = [dict(s) for s in loaded.skipped]
    stimulus_set = StimulusSet(
        slug=name,
        title=manifest.title or name,
        schema_version=manifest.schema_version,
        source_format=loaded.source_format,
        manifest=stored,
        image_count=len(manifest.files),
    )
    session.add(stimulus_set)
    session.flush()
    # Encoding dominates an import; Pillow releases the GIL while it encodes.
    paths = list(manifest.files)
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        encodings = list(pool.map(lambda rel: blobs.encode_and_put(loaded.file_path(rel)), paths))
    for rel, encoded in zip(paths, encodings, strict=True):
        session.add(
            StimulusImage(
                stimulus_set_id=stimulus_set.id,
                path=rel,
                source_sha256=manifest.files[rel].sha256,
                lossless_sha256=encoded.lossless_sha256,
                lossy_sha256=encoded.lossy_sha256,
                png_sha256=encoded.png_sha256,
            )
        )
    for unit in manifest.units:
        session.add(
            StimulusUnit(
                stimulus_set_id=stimulus_set.id,
                unit_key=unit.id,
                layer=unit.layer,
                channel=unit.channel,
                branch=unit.branch,
                label=unit.label or f"{unit.layer} {unit.channel}",
                hand_picked=unit.hand_picked,
                roles=list(unit.roles),
                data=unit.model_dump(mode="json", include={"natural", "synthetic"}),
            )
        )
    session.flush()
    logger.info(
        "stimulus set imported",
        extra={"stimulus_set": name, "units": len(manifest.units), "images": len(manifest.files)},
    )
    return stimulus_set


def get_stimulus_set(session: Session, slug: str) -> StimulusSet:
    found = session.scalar(select(StimulusSet).where(StimulusSet.slug == slug))
    if found is None:
        raise NotFound(f"no stimulus set named {slug!r}")
    return found


def manifest_of(stimulus_set: StimulusSet) -> StimulusManifest:
    return StimulusManifest.model_validate(stimulus_set.manifest)


_CATALOGS: LruCache[tuple[int, str, str], Catalog] = LruCache(maxsize=32)


def catalog_of(stimulus_set: StimulusSet) -> Catalog:
    """The set's units as designs see them (cached: an imported set never changes)."""
    key = (stimulus_set.id, stimulus_set.slug, stimulus_set.imported_at.isoformat())
    return _CATALOGS.get(key, lambda: catalog_from_manifest(manifest_of(stimulus_set)))


def image_hashes(session: Session, stimulus_set_id: int, encoding: str) -> dict[str, str]:
    """Map each image path of a set to the hash of its served encoding (lossless|lossy|png)."""
    column = {
        "lossless": StimulusImage.lossless_sha256,
        "lossy": StimulusImage.lossy_sha256,
        "png": StimulusImage.png_sha256,
    }[encoding]
    rows = session.execute(
        select(StimulusImage.path, column).where(StimulusImage.stimulus_set_id == stimulus_set_id)
    )
    return dict(rows.all())


def list_stimulus_sets(session: Session, *, order: Literal["newest", "slug"]) -> list[StimulusSet]:
    """Every imported set, newest first or by name."""
    key = StimulusSet.id.desc() if order == "newest" else StimulusSet.slug
    return list(session.scalars(select(StimulusSet).order_by(key)))


def import_options(reference_type: str, role: str) -> ImportOptions:
    """What the experimenter declared about an imported folder ("" for "not said").

    Raises:
        InvalidInput: an unknown reference type or role.
    """
    if reference_type not in ("", *REFERENCE_TYPES) or role not in ("", *ROLES):
        raise InvalidInput("unknown reference type or role")
    return ImportOptions(
        reference_type=reference_type or None,  # type: ignore[arg-type]
        role=role or None,
    )


def import_archive(
    session: Session,
    archive: BinaryIO,
    blobs: BlobStore,
    *,
    set_id: str | None = None,
    options: ImportOptions | None = None,
    max_total_bytes: int = MAX_ZIP_TOTAL_BYTES,
) -> StimulusSet:
    """Import a set from an open .zip file (an upload), spooled to a temporary file first.

    Raises:
        ManifestInvalid, Conflict: as `import_stimulus_set`.
    """
    with tempfile.TemporaryDirectory(prefix="psychvis-upload-") as tmp:
        target = Path(tmp) / "upload.zip"
        with target.open("wb") as out:
            shutil.copyfileobj(archive, out, UPLOAD_CHUNK)
        return import_stimulus_set(
            session,
            target,
            blobs,
            set_id=set_id,
            options=options,
            max_total_bytes=max_total_bytes,
        )


def import_from_root(
    session: Session,
    root: Path | None,
    relative: str,
    blobs: BlobStore,
    *,
    set_id: str | None = None,
    options: ImportOptions | None = None,
    max_total_bytes: int = MAX_ZIP_TOTAL_BYTES,
) -> StimulusSet:
    """Import a set from a folder or .zip under the configured import root.

    Args:
        root: PSYCHVIS_STIMULI_IMPORT_ROOT (None: importing by server path is off).
        relative: the path below `root`; it may not leave it.

    Raises:
        InvalidInput: no root configured, or a path outside it.
        ManifestInvalid, Conflict: as `import_stimulus_set`.
    """
    if root is None:
        raise InvalidInput("importing by server path is off (PSYCHVIS_STIMULI_IMPORT_ROOT)")
    source = (root / relative).resolve()
    if not source.is_relative_to(root.resolve()):
        raise InvalidInput(f"the path must lie inside {root}")
    return import_stimulus_set(
        session, source, blobs, set_id=set_id, options=options, max_total_bytes=max_total_bytes
    )


def units_of(session: Session, stimulus_set: StimulusSet) -> list[StimulusUnit]:
    """The set's units by layer and channel."""
    return list(
        session.scalars(
            select(StimulusUnit)
            .where(StimulusUnit.stimulus_set_id == stimulus_set.id)
            .order_by(StimulusUnit.layer, StimulusUnit.channel)
        )
    )


@dataclass(frozen=True)
class UnitPreview:
    """A unit's images as served URLs (None where an image is missing).

    batches: per natural batch, `{"batch", "max", "min", "max_query", "min_query"}`.
    synthetic: `{"max": [...], "min": [...]}` reference URLs.
    """

    unit: StimulusUnit
    batches: list[dict[str, Any]]
    synthetic: dict[str, list[str | None]]


def unit_preview(session: Session, stimulus_set: StimulusSet, unit_key: str) -> UnitPreview:
    """A unit with the lossless image URLs of its references and queries.

    Raises:
        NotFound: no unit with that key in the set.
    """
    unit = session.scalar(
        select(StimulusUnit).where(
            StimulusUnit.stimulus_set_id == stimulus_set.id, StimulusUnit.unit_key == unit_key
        )
    )
    if unit is None:
        raise NotFound("no such unit in this set")
    hashes = image_hashes(session, stimulus_set.id, "lossless")

    def url(entry: dict[str, Any] | None) -> str | None:
        if not entry or entry.get("path") not in hashes:
            return None
        return image_url(f"{hashes[entry['path']]}.webp")

    natural = unit.data.get("natural") or {}
    batches = [
        {
            "batch": b["batch"],
            "max": [url(e) for e in b.get("max_references", [])],
            "min": [url(e) for e in b.get("min_references", [])],
            "max_query": url(b.get("max_query")),
            "min_query": url(b.get("min_query")),
        }
        for b in natural.get("batches") or []
    ]
    synthetic = unit.data.get("synthetic") or {}
    return UnitPreview(
        unit,
        batches,
        {
            "max": [url(e) for e in synthetic.get("max_references", [])],
            "min": [url(e) for e in synthetic.get("min_references", [])],
        },
    )
