"""Released stimulus layouts: IMI unit-folder trees and the paper's stimulus tree (folders and
zips), IMI task folders (kinds, numbering, order), roles at import, and the imi preset run on an
imported IMI set through the JSON API."""

from __future__ import annotations

import json
import shutil
import uuid
import zipfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from app.config import Settings, get_settings
from app.errors import ManifestInvalid
from app.models import Participant, StimulusSet
from app.services.blobs import BlobStore
from app.services.stimuli import catalog_of, import_stimulus_set, import_stimulus_sources
from app.stimulus_sources import ImportOptions, load_source
from tests.app.routes.dashboard_client import login
from tests.app.test_designs_through_api import _answer_current, _enrol
from tests.factories import make_experiment, make_launch, make_user

SIZE = 8
_shade = [0]


def _png(path: Path) -> None:
    """A distinct tiny image per call (identical images would look like query copies)."""
    _shade[0] += 1
    n = _shade[0]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (SIZE, SIZE), (n % 251, (n // 251) % 251, 7)).save(path)


def _side_files(folder: Path, n: int = 10) -> None:
    for side in ("max", "min"):
        for i in range(n):
            _png(folder / f"{side}_{i}.png")


def write_imi_units(root: Path, units: list[tuple[str, int]], batches: int = 0) -> Path:
    """IMI's unit folders: LAYER/channel_C/{natural_images[/batch_B],optimized_images}/..."""
    for layer, channel in units:
        unit = root / layer / f"channel_{channel}"
        if batches:
            for b in range(batches):
                _side_files(unit / "natural_images" / f"batch_{b}")
        else:
            _side_files(unit / "natural_images")
        _side_files(unit / "optimized_images")
        (unit / "natural_images" / "activations.csv").parent.mkdir(parents=True, exist_ok=True)
        (unit / "natural_images" / "activations.csv").write_text("image,activation\n")
    return root


def write_paper_tree(root: Path, mapping: bool) -> Path:
    """The paper's tree: layer_L/kernel_size_K/channel_C/{natural_images/batch_B,
    optimized_images}."""
    for layer, kernel, channel in ((0, 3, 1), (4, 0, 0)):
        unit = root / f"layer_{layer}" / f"kernel_size_{kernel}" / f"channel_{channel}"
        for b in range(3):
            _side_files(unit / "natural_images" / f"batch_{b}")
        _side_files(unit / "optimized_images")
    if mapping:
        (root / "layer_folder_mapping_sampled_trials.csv").write_text(
            "encoding in folder structure - correspondence in InceptionV1\n"
            "layer_number,kernel_size_number,channel_number,layer_name,pre_post_relu,"
            "kernel_size,feature_map_number\n"
            "0,3,1,mixed3a,pre_relu,pool,230\n"
            "4,0,0,mixed4c,pre_relu,1x1,94\n"
        )
    return root


def _zip(folder: Path, target: Path) -> Path:
    with zipfile.ZipFile(target, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, (Path(folder.name) / path.relative_to(folder)).as_posix())
    return target


def _name(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def _blobs(settings: Settings) -> BlobStore:
    return BlobStore(settings.stimuli_dir / "blobs")


@pytest.mark.parametrize("as_zip", [False, True])
def test_imi_unit_folders_import_with_names_kinds_and_order(
    as_zip: bool, tmp_path: Path, db_session: Session, settings: Settings
) -> None:
    root = write_imi_units(
        tmp_path / "catch_trials",
        [("mixed4c_pool_reduce_pre_relu_conv", 1), ("mixed3a", 230), ("manual_4c_0_4", 1)],
    )
    source = _zip(root, tmp_path / "catch.zip") if as_zip else root
    imported = import_stimulus_set(
        db_session,
        source,
        _blobs(settings),
        set_id=f"u-{str(as_zip).lower()}",
        options=ImportOptions(role="catch"),
    )
    assert imported.source_format == "imi-units"
    units = {u["label"]: u for u in imported.manifest["units"]}
    branch = units["mixed4c_pool_reduce_pre_relu_conv/channel_1"]
    # channel_C of a branch conv counts within it: global index 448 + 1 in mixed4c.
    assert (branch["id"], branch["layer"], branch["channel"], branch["branch"]) == (
        "mixed4c:449",
        "mixed4c",
        449,
        "pool",
    )
    assert units["mixed3a/channel_230"]["branch"] == "pool"
    hand = units["manual_4c_0_4/channel_1"]
    assert (hand["id"], hand["layer"], hand["channel"]) == (
        "manual_4c_0_4/channel_1",
        "manual_4c_0_4",
        1,
    )
    for unit in units.values():
        assert unit["roles"] == ["catch"]
        batch = unit["natural"]["batches"][0]
        assert batch["batch"] == 1
        # IMI numbers both sides from weakest to strongest: 9 is the query, 8 the most
        # extreme reference, shown first.
        assert _name(batch["max_query"]["path"]) == "max_9.png"
        assert _name(batch["min_query"]["path"]) == "min_9.png"
        assert [_name(e["path"]) for e in batch["max_references"]] == [
            f"max_{i}.png" for i in range(8, -1, -1)
        ]
        assert [_name(e["path"]) for e in batch["min_references"]] == [
            f"min_{i}.png" for i in range(8, -1, -1)
        ]
        synthetic = unit["synthetic"]
        assert _name(synthetic["max_references"][0]["path"]) == "max_8.png"
        assert len(synthetic["max_references"]) == 9
    skipped = imported.manifest["provenance"]["skipped"]
    assert {_name(s["path"]) for s in skipped} == {"activations.csv", "max_9.png", "min_9.png"}
    catalog = catalog_of(imported)
    assert {(u.n_natural_references, u.n_synthetic_references) for u in catalog.units} == {(9, 9)}


@pytest.mark.parametrize("as_zip", [False, True])
def test_paper_tree_imports_batches_and_feature_maps(
    as_zip: bool, tmp_path: Path, db_session: Session, settings: Settings
) -> None:
    root = write_paper_tree(tmp_path / "stimuli_experiment_i", mapping=True)
    source = _zip(root, tmp_path / "paper.zip") if as_zip else root
    imported = import_stimulus_set(
        db_session, source, _blobs(settings), set_id=f"p-{str(as_zip).lower()}"
    )
    assert imported.source_format == "paper-tree"
    units = {u["id"]: u for u in imported.manifest["units"]}
    assert set(units) == {"mixed3a:230", "mixed4c:94"}
    assert units["mixed3a:230"]["branch"] == "pool" and units["mixed4c:94"]["branch"] == "1x1"
    batches = units["mixed3a:230"]["natural"]["batches"]
    assert [b["batch"] for b in batches] == [0, 1, 2]
    # Ascending activation on both sides: max query max_9, min query min_0.
    assert _name(batches[1]["max_query"]["path"]) == "max_9.png"
    assert _name(batches[1]["min_query"]["path"]) == "min_0.png"
    assert _name(batches[1]["max_references"][0]["path"]) == "max_8.png"
    assert _name(batches[1]["min_references"][0]["path"]) == "min_1.png"


def test_paper_tree_without_mapping_keeps_folder_names(tmp_path: Path) -> None:
    loaded = load_source(write_paper_tree(tmp_path / "tree", mapping=False))
    unit = next(u for u in loaded.manifest.units if u.id.startswith("layer_0"))
    assert (unit.id, unit.layer, unit.branch) == (
        "layer_0/kernel_size_3/channel_1",
        "mixed3a",
        "pool",
    )
    assert unit.label and "feature map not given" in unit.label


def test_unsupported_tree_lists_the_supported_layouts_and_what_was_found(tmp_path: Path) -> None:
    (tmp_path / "odd" / "pictures").mkdir(parents=True)
    (tmp_path / "odd" / "notes.txt").write_text("x")
    with pytest.raises(ManifestInvalid) as caught:
        load_source(tmp_path / "odd")
    message = str(caught.value)
    assert "IMI unit folders" in message and "paper stimulus tree" in message
    assert "manifest.json" in message and "index.json" in message
    assert "Found: notes.txt, pictures/" in message


def _task_folder(root: Path, index: dict, n_trials: int = 2) -> Path:  # type: ignore[type-arg]
    root.mkdir(parents=True)
    (root / "index.json").write_text(json.dumps({"n_trials": n_trials, **index}))
    for k in range(1, n_trials + 1):
        trial = root / "trials" / f"trial_{k}"
        _png(trial / "queries" / "max.png")
        _png(trial / "queries" / "min.png")
        _side_files(trial / "references")
    return root


def test_task_folder_kind_comes_from_the_data_or_is_asked_for(tmp_path: Path) -> None:
    # The name says "natural", the data don't: the import stops and asks.
    unnamed = _task_folder(tmp_path / "natural_task", {"task_name": "natural_task"})
    with pytest.raises(ManifestInvalid, match="--reference-type"):
        load_source(unnamed)
    declared = load_source(unnamed, ImportOptions(reference_type="synthetic"))
    assert declared.manifest.units[0].synthetic is not None
    stated = _task_folder(tmp_path / "task_7", {"task_name": "x", "mode": "optimized"})
    assert load_source(stated).manifest.units[0].synthetic is not None
    with pytest.raises(ManifestInvalid, match="index.json says"):
        load_source(stated, ImportOptions(reference_type="natural"))
    # IMI's task-structure file next to the task folders gives each trial's mode.
    task = _task_folder(tmp_path / "googlenet_natural" / "task_1", {"task_name": "g/task_1"})
    (task.parent / "googlenet_natural.json").write_text(
        json.dumps(
            {"tasks": [{"index": 1, "trials": [{"mode": "natural"}, {"mode": "catch_trial"}]}]}
        )
    )
    structured = load_source(task)
    unit = structured.manifest.units[0]
    assert unit.natural is not None and unit.natural.batches[0].max_references
    assert structured.manifest.provenance["reference_type_from"] == "googlenet_natural.json"


def test_task_folder_drops_query_copies_from_main_trials_but_not_catch_trials(
    tmp_path: Path,
) -> None:
    # IMI's natural tasks copy the whole batch folder into references/, queries included.
    root = _task_folder(
        tmp_path / "t", {"task_name": "t", "reference_type": "natural", "catch_trial_idxs": [2]}
    )
    for k in (1, 2):
        refs = root / "trials" / f"trial_{k}" / "references"
        shutil.copy(refs / "max_9.png", root / "trials" / f"trial_{k}" / "queries" / "max.png")
        shutil.copy(refs / "min_0.png", root / "trials" / f"trial_{k}" / "queries" / "min.png")
    loaded = load_source(root)
    main, catch = loaded.manifest.units
    assert main.roles == ("main",) and catch.roles == ("catch",)
    assert main.natural is not None and catch.natural is not None
    main_min = [_name(e.path) for e in main.natural.batches[0].min_references]
    # IMI's order without the query copy min_0; min_9, never shown by IMI, fills in.
    assert main_min == [*(f"min_{i}.png" for i in range(8, 0, -1)), "min_9.png"]
    main_max = [_name(e.path) for e in main.natural.batches[0].max_references]
    assert main_max == [f"max_{i}.png" for i in range(8, -1, -1)]
    # Catch trials keep IMI's order and their query copies (easy on purpose).
    catch_min = [_name(e.path) for e in catch.natural.batches[0].min_references]
    assert catch_min == [f"min_{i}.png" for i in range(8, -1, -1)]
    assert "trials/trial_2/references/min_9.png" not in loaded.manifest.files
    reasons = {s["path"]: s["reason"] for s in loaded.skipped}
    assert reasons["trials/trial_1/references/min_0.png"] == "same image as a query of this trial"
    assert "trials/trial_1/references/min_0.png" not in loaded.manifest.files


def test_shared_imi_demo_folders_import_with_their_kinds_and_imi_order(
    shared_stimuli: Path,
) -> None:
    imi = shared_stimuli / "imi"
    with pytest.raises(ManifestInvalid, match="reference type"):
        load_source(imi / "demo_natural_9_references")
    natural = load_source(
        imi / "demo_natural_9_references", ImportOptions(reference_type="natural")
    )
    synthetic = load_source(
        imi / "demo_optimized_9_references", ImportOptions(reference_type="synthetic")
    )
    # Older numbering (max_0..8, min_1..9): IMI's task code shows max_8 and min_9 first.
    nat = natural.manifest.units[0]
    assert nat.synthetic is None and nat.natural is not None
    batch = nat.natural.batches[0]
    assert batch.max_query.path == "trials/trial_1/queries/max.png"
    assert batch.min_query.path == "trials/trial_1/queries/min.png"
    assert [_name(e.path) for e in batch.max_references] == [
        f"max_{i}.png" for i in range(8, -1, -1)
    ]
    assert [_name(e.path) for e in batch.min_references] == [
        f"min_{i}.png" for i in range(9, 0, -1)
    ]
    assert natural.skipped == ()
    assert natural.manifest.provenance["numbering"] == ["old"]
    # Newer numbering (0..9 on both sides, 10 files): max_8/min_8 first, max_9/min_9 dropped.
    syn = synthetic.manifest.units[0]
    assert syn.synthetic is not None and syn.natural is not None
    assert syn.natural.batches[0].max_references == ()
    assert syn.natural.batches[0].max_query.path == "trials/trial_1/queries/max.png"
    assert [_name(e.path) for e in syn.synthetic.max_references] == [
        f"max_{i}.png" for i in range(8, -1, -1)
    ]
    assert _name(syn.synthetic.min_references[0].path) == "min_8.png"
    dropped = {s["path"] for s in synthetic.skipped}
    assert dropped == {
        f"trials/trial_{k}/references/{side}_9.png" for k in (1, 2) for side in ("max", "min")
    }
    assert synthetic.manifest.provenance["numbering"] == ["new"]


def test_cli_import_assembles_roles_and_prints_the_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.cli import app

    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'cli.sqlite3'}")
    monkeypatch.setenv("PSYCHVIS_STIMULI_DIR", str(tmp_path / "stimuli"))
    monkeypatch.setenv("PSYCHVIS_LOG_LEVEL", "WARNING")
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
        main = write_imi_units(tmp_path / "main", [("mixed4a", 68), ("mixed4b", 45)], batches=2)
        practice = write_imi_units(tmp_path / "practice", [("manual_unit", 3)])
        roles = tmp_path / "roles.json"
        roles.write_text(json.dumps({"mixed4b:45": ["catch"]}))
        result = runner.invoke(
            app,
            ["stimuli", "import", str(main), str(practice), "--role", "main", "--role", "practice"]
            + ["--roles", str(roles), "--name", "assembled"],
        )
        assert result.exit_code == 0, result.output
        out = result.stdout
        assert "imported assembled (imi-units): 3 units" in out
        assert (
            "mixed4a/channel_68: layer mixed4a, channel 68, kinds natural+synthetic, roles main"
            in out
        )
        assert "mixed4b/channel_45: layer mixed4b, channel 45" in out and "roles catch" in out
        assert (
            "manual_unit/channel_3: layer manual_unit, channel 3" in out and "roles practice" in out
        )
        assert "references max/min per side: natural 9/9, synthetic 9/9" in out
        assert "skipped main/mixed4a/channel_68/optimized_images/max_9.png" in out
        bad = runner.invoke(app, ["stimuli", "import", str(main), "--role", "main", "--role", "x"])
        assert bad.exit_code == 1 and "once per folder" in bad.output
        task = _task_folder(tmp_path / "task", {"task_name": "t"})
        asked = runner.invoke(app, ["stimuli", "import", str(task)])
        assert asked.exit_code == 1 and "--reference-type" in asked.output
    finally:
        get_settings.cache_clear()


def test_console_upload_asks_for_the_reference_type_and_shows_the_report(
    client: TestClient, db_session: Session, tmp_path: Path
) -> None:
    make_user(db_session, "owner@example.org")
    db_session.commit()
    token = login(client, "owner@example.org")
    task = _zip(_task_folder(tmp_path / "task_3", {"task_name": "t3"}), tmp_path / "t.zip")
    with task.open("rb") as fh:
        refused = client.post(
            "/dashboard/stimuli",
            data={"csrf_token": token, "name": "task-three"},
            files={"archive": ("t.zip", fh, "application/zip")},
        )
    assert refused.status_code == 422 and "Reference images" in refused.text
    assert 'name="reference_type"' in client.get("/dashboard/stimuli").text
    with task.open("rb") as fh:
        imported = client.post(
            "/dashboard/stimuli",
            data={
                "csrf_token": token,
                "name": "task-three",
                "reference_type": "synthetic",
                "role": "practice",
            },
            files={"archive": ("t.zip", fh, "application/zip")},
            follow_redirects=False,
        )
    assert imported.status_code == 303, imported.text
    page = client.get(imported.headers["location"]).text
    assert "synthetic 9/9" in page and "practice" in page
    assert "data-skipped" in page and "never shows it" in page


def test_imi_preset_runs_on_an_imported_imi_set_through_the_json_api(
    client: TestClient, db_session: Session, settings: Settings, tmp_path: Path
) -> None:
    layers = ["mixed3a", "mixed3b", "mixed4a", "mixed4b", "mixed4c"]
    main = write_imi_units(tmp_path / "main", [(layers[i % 5], i) for i in range(40)], batches=2)
    practice = write_imi_units(tmp_path / "practice", [(f"manual_p{i}", 1) for i in range(5)])
    catch = write_imi_units(tmp_path / "catch_trials", [(f"manual_c{i}", 1) for i in range(5)])
    stimulus_set = import_stimulus_sources(
        db_session,
        [
            (main, ImportOptions(role="main")),
            (practice, ImportOptions(role="practice")),
            (catch, ImportOptions(role="catch")),
        ],
        _blobs(settings),
        set_id=f"imi-{uuid.uuid4().hex[:6]}",
    )
    db_session.commit()
    roles = [u.roles for u in catalog_of(stimulus_set).units]
    assert (roles.count(("main",)), roles.count(("practice",)), roles.count(("catch",))) == (
        40,
        5,
        5,
    )
    # Both arms are accepted by the design checks when the experiment is created.
    launched = make_launch(db_session, make_experiment(db_session, stimulus_set, design="imi"))
    db_session.commit()
    for n in range(2):
        token = _enrol(client, launched.link_code, f"imi-{n}")
        client.post(f"/p/{token}/consent", data={"decision": "agree"})
        client.post(f"/p/{token}/instructions")
        participant = db_session.scalar(select(Participant).where(Participant.token == token))
        assert participant is not None and participant.arm in ("natural", "synthetic")
        answered = 0
        while True:
            result = _answer_current(client, db_session, token, participant.id, correct=True)
            answered += 1
            if result["next"]["step"] != "trial":
                break
        assert answered == 50  # 5 practice (all correct: spare attempts skipped) + 40 + 5
        assert result["next"]["step"] == "done"
        # The imi preset asks for optional free-text feedback, which finishes the study.
        finished = client.post(f"/p/{token}/feedback", data={"text": ""}, follow_redirects=False)
        assert finished.status_code == 303, finished.text
        db_session.refresh(participant)
        assert participant.status == "completed"
    arms = set(
        db_session.scalars(
            select(Participant.arm).where(Participant.experiment_session_id == launched.id)
        )
    )
    assert arms == {"natural", "synthetic"}
    assert (
        db_session.scalar(
            select(StimulusSet.source_format).where(StimulusSet.id == stimulus_set.id)
        )
        == "imi-units"
    )


def test_units_of_several_folders_keep_distinct_ids(
    tmp_path: Path, db_session: Session, settings: Settings
) -> None:
    a = _task_folder(tmp_path / "a", {"task_name": "a", "reference_type": "natural"})
    b = shutil.copytree(a, tmp_path / "b")
    merged = import_stimulus_sources(
        db_session, [(a, None), (b, None)], _blobs(settings), set_id="ab"
    )
    ids = [u["id"] for u in merged.manifest["units"]]
    assert ids == ["a/trial_1", "a/trial_2", "b/trial_1", "b/trial_2"]


def test_a_design_can_take_practice_and_catch_units_from_the_main_units(tmp_path: Path) -> None:
    from app import designs
    from app.stimuli import catalog_from_manifest

    tree = write_imi_units(tmp_path / "units", [(f"manual_{i:02d}", 1) for i in range(50)])
    catalog = catalog_from_manifest(load_source(tree).manifest)
    assert {u.roles for u in catalog.units} == {("main",)}
    text = designs.preset_text("imi")
    for name, extra in (("practice", "skip = 40\n"), ("catch", "skip = 45\n")):
        text = text.replace(
            f'[units.{name}]\nrole = "{name}"\n', f'[units.{name}]\nrole = "main"\n{extra}'
        )
    design = designs.parse_design(text, "imi-from-main", catalog)
    ids = [u.id for u in catalog.units]
    for n, arm in ((1, "natural"), (2, "synthetic")):
        schedule = designs.generate_schedule(design, catalog, n, arm=arm)
        by_kind: dict[str, set[str]] = {}
        for trial in schedule.trials:
            if trial.unit_id is not None:
                by_kind.setdefault(trial.trial_kind, set()).add(trial.unit_id)
        assert by_kind["practice"] == set(ids[40:45])
        assert by_kind["catch"] == set(ids[45:50])
        assert by_kind["main"] == set(ids[:40])
    with pytest.raises(ValueError, match="skip"):
        designs.model.UnitList(ids=("a",), skip=1)
