"""Stimulus set validation and import: v1 folders and zips, IMI task folders, broken sets."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import zipfile
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.demo import write_demo_set
from app.errors import Conflict, ManifestInvalid
from app.models import StimulusImage, StimulusSet, StimulusUnit
from app.services.blobs import BlobStore
from app.services.stimuli import catalog_of, import_stimulus_set
from app.stimuli import catalog_from_manifest, extracted_zip, load_manifest, load_set
from app.stimulus_sources import ImportOptions


@pytest.fixture(scope="module")
def small_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_demo_set(
        tmp_path_factory.mktemp("small") / "set",
        n_main_units=2,
        n_practice_units=1,
        n_batches=2,
        set_id="small-set",
        size=32,
    )


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _rewrite(root: Path, edit: callable) -> None:  # type: ignore[valid-type]
    manifest = json.loads((root / "manifest.json").read_text())
    edit(manifest)
    (root / "manifest.json").write_text(json.dumps(manifest))


def test_demo_set_loads_and_catalog_describes_units(small_set: Path) -> None:
    manifest = load_manifest(small_set)
    catalog = catalog_from_manifest(manifest)
    assert [u.id for u in catalog.units] == ["demo:0", "demo:1", "demo:2"]
    assert catalog.units[0].natural_batches == (0, 1)
    assert catalog.units[0].n_natural_references == 9
    assert catalog.units[0].n_synthetic_references == 9
    assert catalog.units[2].roles == ("practice", "catch")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m.update(schema_version=2), "schema_version"),
        (lambda m: m.update(id="Bad Name!"), "id"),
        (lambda m: m["units"][0].update(channel=-1), "channel"),
        (lambda m: m["units"][0].update(colour="red"), "colour"),
        (lambda m: m["units"].append(m["units"][0]), "appears twice"),
        (lambda m: m["files"].pop(next(iter(m["files"]))), "not listed"),
        (
            lambda m: m["units"][0]["natural"]["batches"][0]["max_references"].append(
                m["units"][0]["natural"]["batches"][0]["max_query"]
            ),
            "overlap",
        ),
    ],
)
def test_broken_manifest_is_refused_with_a_message_naming_the_problem(
    small_set: Path,
    tmp_path: Path,
    edit: callable,
    message: str,  # type: ignore[valid-type]
) -> None:
    root = _copy(small_set, tmp_path / "set")
    _rewrite(root, edit)
    with pytest.raises(ManifestInvalid, match=message):
        load_manifest(root)


def test_tampered_image_and_wrong_size_and_traversal_are_refused(
    small_set: Path, tmp_path: Path
) -> None:
    root = _copy(small_set, tmp_path / "a")
    first = next(iter(json.loads((root / "manifest.json").read_text())["files"]))
    (root / first).write_bytes((root / first).read_bytes() + b"x")
    with pytest.raises(ManifestInvalid, match="sha256"):
        load_manifest(root)

    root = _copy(small_set, tmp_path / "b")
    img = Image.new("RGB", (100, 100))
    img.save(root / first)
    digest = hashlib.sha256((root / first).read_bytes()).hexdigest()
    _rewrite(root, lambda m: m["files"][first].update(sha256=digest))
    with pytest.raises(ManifestInvalid, match="expected 32x32"):
        load_manifest(root)

    root = _copy(small_set, tmp_path / "c")

    def traverse(m: dict) -> None:  # type: ignore[type-arg]
        m["files"]["../outside.png"] = m["files"].pop(first)
        m["units"][0]["natural"]["batches"][0]["max_query"]["path"] = "../outside.png"

    _rewrite(root, traverse)
    with pytest.raises(ManifestInvalid, match="leaves"):
        load_manifest(root)

    root = _copy(small_set, tmp_path / "d")
    (root / first).unlink()
    os.symlink("/etc/passwd", root / first)
    with pytest.raises(ManifestInvalid, match="not a regular file"):
        load_manifest(root)


def test_imi_task_folders_import_with_either_reference_numbering(shared_stimuli: Path) -> None:
    natural = load_set(
        shared_stimuli / "imi" / "demo_natural_9_references", ImportOptions("natural")
    )
    synthetic = load_set(
        shared_stimuli / "imi" / "demo_optimized_9_references", ImportOptions("synthetic")
    )
    assert natural.source_format == synthetic.source_format == "imi"
    nat_unit = natural.manifest.units[0]
    assert nat_unit.natural is not None and len(nat_unit.natural.batches[0].max_references) == 9
    assert nat_unit.natural.batches[0].min_references[0].path.endswith("min_9.png")  # 1..9
    syn_unit = synthetic.manifest.units[0]
    assert syn_unit.synthetic is not None and len(syn_unit.synthetic.max_references) == 9  # 0..8
    assert syn_unit.natural is not None and syn_unit.natural.batches[0].max_references == ()
    assert [u.id for u in synthetic.manifest.units] == ["trial_1", "trial_2"]


def _zip_dir(root: Path, zip_path: Path, prefix: str = "") -> Path:
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(root.rglob("*")):
            zf.write(path, prefix + str(path.relative_to(root)))
    return zip_path


def test_zip_with_traversal_or_bomb_is_refused(tmp_path: Path) -> None:
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../../escape.txt", "x")
    with pytest.raises(ManifestInvalid, match="leaves"), extracted_zip(evil):
        pass
    assert not (tmp_path.parent / "escape.txt").exists()

    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", b"0" * (50 * 1024 * 1024))
    with pytest.raises(ManifestInvalid, match="bomb"), extracted_zip(bomb):
        pass

    with pytest.raises(ManifestInvalid, match="zip"), extracted_zip(tmp_path / "missing.zip"):
        pass


def test_import_stores_units_images_and_blobs_and_serves_them(
    db_session: Session,
    small_set: Path,
    tmp_path: Path,
    settings,
    client,  # type: ignore[no-untyped-def]
) -> None:
    blobs = BlobStore(settings.stimuli_dir / "blobs")
    imported = import_stimulus_set(
        db_session, _zip_dir(small_set, tmp_path / "s.zip", prefix="top/"), blobs, set_id="zipped"
    )
    db_session.commit()
    assert imported.source_format == "v1"
    assert (
        db_session.scalar(
            select(func.count())
            .select_from(StimulusUnit)
            .where(StimulusUnit.stimulus_set_id == imported.id)
        )
        == 3
    )
    image = db_session.scalars(
        select(StimulusImage).where(StimulusImage.stimulus_set_id == imported.id)
    ).first()
    assert image is not None
    assert catalog_of(imported).units[0].id == "demo:0"

    response = client.get(f"/img/{image.lossless_sha256}.webp")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/webp"
    assert "immutable" in response.headers["cache-control"]
    assert hashlib.sha256(response.content).hexdigest() == image.lossless_sha256
    lossy = client.get(f"/img/{image.lossy_sha256}.webp")
    assert len(lossy.content) < len(response.content)
    assert client.get("/img/" + "0" * 64 + ".webp").status_code == 404
    assert client.get("/img/..%2F..%2Fetc%2Fpasswd").status_code == 404

    with pytest.raises(Conflict):
        import_stimulus_set(db_session, small_set, blobs, set_id="zipped")


def test_broken_set_imports_nothing(
    db_session: Session, small_set: Path, tmp_path: Path, settings
) -> None:  # type: ignore[no-untyped-def]
    root = _copy(small_set, tmp_path / "broken")
    last = sorted(json.loads((root / "manifest.json").read_text())["files"])[-1]
    (root / last).write_bytes(b"not an image")
    digest = hashlib.sha256(b"not an image").hexdigest()
    _rewrite(root, lambda m: m["files"][last].update(sha256=digest))
    before = db_session.scalar(select(func.count()).select_from(StimulusSet))
    with pytest.raises(ManifestInvalid, match="cannot be decoded"):
        import_stimulus_set(db_session, root, BlobStore(settings.stimuli_dir / "blobs"))
    assert db_session.scalar(select(func.count()).select_from(StimulusSet)) == before
