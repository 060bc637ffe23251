"""Round 2 of the hostile review: nothing gives away the answer before it is stored, no filling
a study, trustworthy client addresses, bounded uploads, browser-side defences
(docs/reliability.md, "Hostile review")."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import zipfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.config import Settings
from app.db import utc_now
from app.designs.errors import DesignInvalid
from app.errors import InvalidInput, ManifestInvalid, SessionUnavailable
from app.models import AuditLog, Participant, StimulusSet, TrialResponse, User
from app.services import auth
from app.services import participants as participant_service
from app.services.blobs import BlobStore, served_name
from app.services.stimuli import image_hashes, import_stimulus_set
from app.stimuli import extracted_zip
from app.templating import script_hash
from tests.app.routes.dashboard_client import login
from tests.app.routes.test_participant_flow import answer, enrol, start_task
from tests.factories import make_experiment, make_launch, make_user

NO_FEEDBACK_DESIGN = """
name = "hostile-no-feedback"
seed = "hostile"
every_unit_once = false

[conditions.natural]
reference_type = "natural"
n_references = 9
grid_mode = "min_max"

[feedback.main]
trial = false
block = false

[[blocks]]
kind = "main"
condition = "natural"
n_trials = 3
"""


def _running(
    client: TestClient,
    db_session: Session,
    demo_set: StimulusSet,
    pid: str,
    design_text: str | None = None,
) -> tuple[str, dict[str, Any]]:
    experiment = (
        make_experiment(db_session, demo_set, design="hostile", design_text=design_text)
        if design_text
        else make_experiment(db_session, demo_set)
    )
    launched = make_launch(db_session, experiment)
    db_session.commit()
    token = enrol(client, launched.link_code, {"PROLIFIC_PID": pid})
    return token, start_task(client, token)


# --- row 1: no correctness where the trial gives no feedback -------------------------------------


def test_answers_without_feedback_do_not_say_what_was_correct(
    client: TestClient, db_session: Session, demo_set: StimulusSet
) -> None:
    token, _ = _running(client, db_session, demo_set, "nofb-1", NO_FEEDBACK_DESIGN)
    acks = [client.post(f"/api/p/{token}/responses", json=answer(i)) for i in range(3)]
    for ack in acks:
        assert ack.status_code == 200, ack.text
        body = ack.json()
        assert body["correct"] is None and body["solution"] is None
    # The block end says the block ended but not its score.
    assert acks[-1].json()["block_end"]["n_correct"] is None


def test_answers_with_feedback_still_say_what_was_correct(
    client: TestClient, db_session: Session, demo_set: StimulusSet
) -> None:
    token, _ = _running(client, db_session, demo_set, "fb-1")
    body = client.post(f"/api/p/{token}/responses", json=answer(0)).json()
    assert isinstance(body["correct"], bool)
    assert body["solution"]["response"] in ("upper", "lower")


# --- rows 6, 7, 17: headers from the app, no schema in production, trusted hosts -------------


@pytest.fixture()
def prod_client(settings: Settings, db_session: Session) -> Iterator[TestClient]:
    """The app as production configures it (https base URL), on the test's session."""
    from app.main import create_app
    from app.routes.deps import get_session

    prod = settings.model_copy(update={"env": "prod", "base_url": "https://study.example.org"})
    application = create_app(prod)
    application.dependency_overrides[get_session] = lambda: db_session
    with TestClient(application, base_url="https://study.example.org") as test_client:
        yield test_client
    application.dependency_overrides.clear()


def test_pages_carry_security_headers_without_inline_script(
    client: TestClient, db_session: Session, demo_set: StimulusSet
) -> None:
    token, _ = _running(client, db_session, demo_set, "headers-1")
    page = client.get(f"/p/{token}")
    csp = page.headers["content-security-policy"]
    # Participant pages: framed only by MTurk (ExternalQuestion HITs).
    assert "frame-ancestors https://www.mturk.com https://workersandbox.mturk.com" in csp
    assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    # The one inline script (the import map) is allowed by its hash, nothing else is inline.
    import_maps = re.findall(r'<script type="importmap">(.*?)</script>', page.text, re.S)
    assert len(import_maps) == 1
    assert script_hash(import_maps[0]) in csp
    scripts = re.findall(
        r"<script(?![^>]*\b(?:src|type=\"(?:importmap|application/json)\")).*?>", page.text
    )
    assert scripts == []
    assert " style=" not in page.text
    assert "strict-transport-security" not in page.headers  # http base URL
    login = client.get("/dashboard/login")
    assert "frame-ancestors 'none'" in login.headers["content-security-policy"]
    assert login.headers["x-frame-options"] == "DENY"


def test_production_sends_hsts_hides_the_schema_and_refuses_forged_hosts(
    prod_client: TestClient,
) -> None:
    assert prod_client.get("/healthz").headers["strict-transport-security"].startswith("max-age=")
    assert prod_client.get("/api/openapi.json").status_code == 404
    assert prod_client.get("/api/docs").status_code == 404
    forged = prod_client.get(
        "/dashboard/", headers={"host": "evil.example"}, follow_redirects=False
    )
    assert forged.status_code == 400
    assert "evil.example" not in forged.headers.get("location", "")


def test_production_answers_the_extra_trusted_hosts_and_no_others(
    settings: Settings, db_session: Session
) -> None:
    from app.main import create_app

    prod = settings.model_copy(
        update={
            "env": "prod",
            "base_url": "https://study.example.org",
            "trusted_hosts": " WWW.study.example.org, *.lab.example.org ,",
        }
    )
    with TestClient(create_app(prod), base_url="https://study.example.org") as prod_client:
        for host in ("study.example.org", "www.study.example.org", "pc7.lab.example.org"):
            assert prod_client.get("/healthz", headers={"host": host}).status_code == 200, host
        for host in ("evil.example", "lab.example.org.evil.example", "example.org"):
            assert prod_client.get("/healthz", headers={"host": host}).status_code == 400, host


# --- rows 4, 8: client addresses through nginx, access logs ----------------------------------


def test_nginx_replaces_a_client_chosen_forwarded_for_and_compose_trusts_only_nginx() -> None:
    import yaml

    from app.config import REPO_ROOT

    proxy = (REPO_ROOT / "deploy" / "psychvis_proxy.conf").read_text(encoding="utf-8")
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in proxy
    assert "$proxy_add_x_forwarded_for" not in proxy
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    trusted = compose["services"]["app"]["environment"]["FORWARDED_ALLOW_IPS"]
    assert trusted != "*"
    nginx_ip = compose["services"]["nginx"]["networks"]["default"]["ipv4_address"]
    assert trusted == nginx_ip


def test_access_log_lines_hold_no_tokens_platform_ids_or_addresses() -> None:
    import logging

    from app.log import configure_logging

    configure_logging("WARNING")
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("203.0.113.9:5555", "GET", "/p/SeCrEtToKeN?PROLIFIC_PID=5f00aa", "1.1", 200),
        None,
    )
    for log_filter in logging.getLogger("uvicorn.access").filters:
        assert isinstance(log_filter, logging.Filter) and log_filter.filter(record)
    line = record.getMessage()
    assert "SeCrEtToKeN" not in line and "5f00aa" not in line and "203.0.113.9" not in line
    assert "/p/{token}" in line


# --- rows 5, 9, 12, 13: bounded and checked imports ----------------------------------------------


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_a_zip_of_many_small_bombs_is_refused_before_anything_is_written(
    db_session: Session, tmp_path: Path, stimuli_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    members = {"set/manifest.json": b"{}"}
    members.update({f"set/{i}.png": bytes(1 << 20) for i in range(300)})
    archive = _zip(tmp_path / "many.zip", members)
    assert archive.stat().st_size < 400_000
    written: list[str] = []
    real_open = Path.open

    def spy(self: Path, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if "w" in mode and "psychvis-zip-" in str(self):
            written.append(str(self))
        return real_open(self, mode, *args, **kwargs)

    monkeypatch.setattr(Path, "open", spy)
    with pytest.raises(ManifestInvalid, match="zip bomb"):
        import_stimulus_set(db_session, archive, BlobStore(stimuli_dir / "blobs"))
    assert len(written) <= 1  # at most the small manifest before the first bomb


def test_the_declared_total_is_checked_before_extracting(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "big.zip", {f"set/{i}.bin": os.urandom(50_000) for i in range(4)})
    with (
        pytest.raises(ManifestInvalid, match="over the limit"),
        extracted_zip(archive, max_total_bytes=100_000) as folder,
    ):
        raise AssertionError(f"extracted into {folder}")


def _demo_zip(tmp_path: Path, demo_set_path: Path, change: Any, name: str = "set.zip") -> Path:
    folder = tmp_path / "copy"
    shutil.copytree(demo_set_path, folder)
    change(folder)
    archive = tmp_path / name
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(folder.rglob("*")):
            zf.write(path, path.relative_to(folder.parent).as_posix())
    return archive


def _rewrite_manifest(folder: Path, edit: Any) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    edit(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))


def _first_image(folder: Path) -> tuple[str, Path]:
    manifest = json.loads((folder / "manifest.json").read_text())
    rel = sorted(manifest["files"])[0]
    return rel, folder / rel


def _set_file(folder: Path, rel: str, data: bytes) -> None:
    (folder / rel).write_bytes(data)
    _rewrite_manifest(
        folder,
        lambda m: m["files"][rel].update(
            {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        ),
    )


def test_nested_manifests_get_a_clear_refusal_not_a_500(
    db_session: Session, tmp_path: Path, stimuli_dir: Path, demo_set_path: Path
) -> None:
    def nest(folder: Path) -> None:
        text = (folder / "manifest.json").read_text()
        (folder / "manifest.json").write_text(
            text[:-1] + ', "deep": ' + "[" * 100_000 + "]" * 100_000 + "}"
        )

    archive = _demo_zip(tmp_path, demo_set_path, nest)
    with pytest.raises(ManifestInvalid, match="nested deeper"):
        import_stimulus_set(db_session, archive, BlobStore(stimuli_dir / "blobs"))


def test_nested_designs_get_422(
    client: TestClient, db_session: Session, demo_set: StimulusSet
) -> None:
    deep = "name = 'deep'\nx = " + "[" * 50_000 + "]" * 50_000 + "\n"
    with pytest.raises(DesignInvalid, match="nested deeper"):
        make_experiment(db_session, demo_set, design="deep", design_text=deep)


@pytest.mark.parametrize("fmt", ["BMP", "GIF", "TIFF", "ICO"])
def test_images_that_are_not_png_jpeg_or_webp_are_refused_whatever_their_name(
    db_session: Session, tmp_path: Path, stimuli_dir: Path, demo_set_path: Path, fmt: str
) -> None:
    def disguise(folder: Path) -> None:
        rel, path = _first_image(folder)
        with Image.open(path) as img:
            size = img.size
        buf = io.BytesIO()
        Image.new("RGB", size, (10, 20, 30)).save(buf, format=fmt)
        _set_file(folder, rel, buf.getvalue())

    archive = _demo_zip(tmp_path, demo_set_path, disguise)
    with pytest.raises(ManifestInvalid, match="as a PNG, JPEG or WebP") as caught:
        import_stimulus_set(db_session, archive, BlobStore(stimuli_dir / "blobs"))
    assert "psychvis-zip-" not in caught.value.detail and "/tmp" not in caught.value.detail


def test_bytes_appended_to_a_png_are_never_served(
    db_session: Session, tmp_path: Path, stimuli_dir: Path, demo_set_path: Path
) -> None:
    payload = b"<html><script>alert(1)</script></html>"

    def append(folder: Path) -> None:
        rel, path = _first_image(folder)
        _set_file(folder, rel, path.read_bytes() + payload)

    archive = _demo_zip(tmp_path, demo_set_path, append)
    imported = import_stimulus_set(
        db_session, archive, BlobStore(stimuli_dir / "blobs"), set_id="appended"
    )
    blobs = list((stimuli_dir / "blobs").rglob("*.png"))
    assert blobs and imported.image_count
    assert not any(payload in blob.read_bytes() for blob in blobs)


@pytest.mark.parametrize("name", ["../../dashboard/users", "<b>x</b>", "Upper", "a/b"])
def test_set_names_follow_the_id_pattern(
    db_session: Session, stimuli_dir: Path, demo_set_path: Path, name: str
) -> None:
    with pytest.raises(InvalidInput, match="must match"):
        import_stimulus_set(
            db_session, demo_set_path, BlobStore(stimuli_dir / "blobs"), set_id=name
        )


def test_import_errors_do_not_show_server_paths(
    db_session: Session, tmp_path: Path, stimuli_dir: Path
) -> None:
    archive = _zip(tmp_path / "empty.zip", {"readme.txt": b"nothing here"})
    with pytest.raises(ManifestInvalid) as caught:
        import_stimulus_set(db_session, archive, BlobStore(stimuli_dir / "blobs"))
    assert str(tmp_path) not in caught.value.detail
    assert "psychvis-zip-" not in caught.value.detail, caught.value.detail
    assert "empty.zip" in caught.value.detail


# --- rows 3, 15, 17: no filling a study --------------------------------------------------------


def _participants(db_session: Session) -> int:
    return db_session.scalar(select(func.count()).select_from(Participant)) or 0


def test_platform_sessions_without_the_platform_id_enrol_nobody(
    client: TestClient, db_session: Session, demo_set: StimulusSet
) -> None:
    experiment = make_experiment(db_session, demo_set)
    prolific = make_launch(db_session, experiment, max_participants=50)
    mturk = make_launch(db_session, experiment, platform="mturk")
    lab = make_launch(db_session, experiment, platform="lab")
    db_session.commit()
    before = _participants(db_session)
    for launched, name in ((prolific, "Prolific"), (mturk, "Mechanical Turk")):
        for data in ({}, {"PROLIFIC_PID": "   "}, {"STUDY_ID": "s"}):
            refused = client.post(f"/s/{launched.link_code}/start", data=data)
            assert refused.status_code == 422
            assert name in refused.text and "start the study there" in refused.text
    assert _participants(db_session) == before
    # Lab sessions have no platform id: unchanged.
    started = client.post(f"/s/{lab.link_code}/start", data={}, follow_redirects=False)
    assert started.status_code == 303


def test_platform_ids_are_trimmed_and_case_folded(
    client: TestClient, db_session: Session, demo_set: StimulusSet
) -> None:
    experiment = make_experiment(db_session, demo_set)
    prolific = make_launch(db_session, experiment)
    mturk = make_launch(db_session, experiment, platform="mturk")
    db_session.commit()
    spellings = [" SAMEPID", "samepid", "SAMEPID ", "SamePid", "\tsamepid\n"]
    tokens = {enrol(client, prolific.link_code, {"PROLIFIC_PID": pid}) for pid in spellings}
    assert len(tokens) == 1
    workers = {
        enrol(client, mturk.link_code, {"workerId": w, "assignmentId": "A1", "hitId": "H"})
        for w in (" a1b2c3", "A1B2C3", "a1B2c3 ")
    }
    assert len(workers) == 1
    stored = db_session.scalars(
        select(Participant.platform_id).where(Participant.experiment_id == experiment.id)
    ).all()
    assert sorted(stored) == ["A1B2C3", "samepid"]


def test_enrolled_but_never_consenting_participants_free_their_place(
    db_session: Session, demo_set: StimulusSet
) -> None:
    launched = make_launch(db_session, make_experiment(db_session, demo_set), max_participants=2)
    for pid in ("bot-1", "bot-2"):
        participant_service.enrol(db_session, launched, {"PROLIFIC_PID": pid})
    with pytest.raises(SessionUnavailable, match="full"):
        participant_service.enrol(db_session, launched, {"PROLIFIC_PID": "real-1"})
    # Within the hold time the places stay taken; after it they are free again.
    with pytest.raises(SessionUnavailable, match="full"):
        participant_service.enrol(
            db_session, launched, {"PROLIFIC_PID": "real-1"}, hold_unconfirmed_s=3600
        )
    db_session.execute(
        update(Participant)
        .where(Participant.experiment_session_id == launched.id)
        .values(created_at=utc_now() - timedelta(hours=2))
    )
    real, created = participant_service.enrol(
        db_session, launched, {"PROLIFIC_PID": "real-1"}, hold_unconfirmed_s=3600
    )
    assert created and real.platform_id == "real-1"


def test_enrolments_per_address_are_rate_limited(
    settings: Settings, db_session: Session, demo_set: StimulusSet
) -> None:
    from app.main import create_app
    from app.routes.deps import get_session

    launched = make_launch(db_session, make_experiment(db_session, demo_set), platform="lab")
    db_session.commit()
    application = create_app(settings.model_copy(update={"enrol_rate_limit": 3}))
    application.dependency_overrides[get_session] = lambda: db_session
    before = _participants(db_session)
    with TestClient(application) as limited:
        statuses = [
            limited.post(f"/s/{launched.link_code}/start", follow_redirects=False).status_code
            for _ in range(5)
        ]
    assert statuses == [303, 303, 303, 429, 429]
    assert _participants(db_session) == before + 3


def test_a_participant_limit_of_zero_is_refused(db_session: Session, demo_set: StimulusSet) -> None:
    experiment = make_experiment(db_session, demo_set)
    with pytest.raises(InvalidInput, match="at least 1"):
        make_launch(db_session, experiment, max_participants=0)


# --- row 2: image URLs that cannot be computed from the images ---------------------------------

IMAGE_URL = re.compile(r"/img/([0-9a-f]{64})\.(webp|png)")


def test_image_urls_cannot_be_computed_from_image_content(
    client: TestClient, db_session: Session, demo_set: StimulusSet, stimuli_dir: Path
) -> None:
    blobs = BlobStore(stimuli_dir / "blobs")
    urls: list[set[str]] = []
    for n in range(2):
        experiment = make_experiment(db_session, demo_set, blobs=blobs)
        launched = make_launch(db_session, experiment)
        db_session.commit()
        token = enrol(client, launched.link_code, {"PROLIFIC_PID": f"keyed-{n}"})
        config = start_task(client, token)
        found = set(IMAGE_URL.findall(json.dumps(config["step"])))
        assert found
        urls.append({name for name, _ in found})
        content_hashes = set(image_hashes(db_session, demo_set.id, "lossless").values())
        for name, ext in found:
            served = client.get(f"/img/{name}.{ext}")
            assert served.status_code == 200
            assert served.headers["cache-control"].endswith("immutable")
            # Hashing what is served (or any image of the set) never gives its URL.
            assert hashlib.sha256(served.content).hexdigest() != name
            assert name not in content_hashes
    # Each experiment has names of its own.
    assert not urls[0] & urls[1]


def test_keyed_image_files_belong_to_the_experiment_not_to_a_participant(
    client: TestClient, db_session: Session, demo_set: StimulusSet, stimuli_dir: Path
) -> None:
    """GDPR deletion removes a participant's rows; on disk there is nothing of theirs to remove:
    the keyed hard links are made once per experiment, and every participant is served them."""
    from app.services.audit import delete_participant

    root = stimuli_dir / "blobs"
    experiment = make_experiment(db_session, demo_set, blobs=BlobStore(root))
    launched = make_launch(db_session, experiment)
    owner = make_user(db_session)
    db_session.commit()
    files = {p.relative_to(root) for p in root.rglob("*") if p.is_file()}
    tokens = [enrol(client, launched.link_code, {"PROLIFIC_PID": f"gdpr-{n}"}) for n in range(2)]
    served = [set(IMAGE_URL.findall(json.dumps(start_task(client, t)["step"]))) for t in tokens]
    # Every name served to either participant is the experiment's name of a set image.
    key = experiment.image_key
    assert key is not None
    names = {
        served_name(key, sha) for sha in image_hashes(db_session, demo_set.id, "lossless").values()
    }
    assert served[0] and served[1] and {n for n, _ in served[0] | served[1]} <= names
    assert client.post(f"/api/p/{tokens[0]}/responses", json=answer(0)).status_code == 200
    gone = db_session.scalar(select(Participant).where(Participant.token == tokens[0]))
    assert gone is not None
    delete_participant(db_session, owner, gone)
    db_session.commit()
    # Enrolling, answering and deleting wrote and removed no file; the other participant's
    # images are still served.
    assert {p.relative_to(root) for p in root.rglob("*") if p.is_file()} == files
    for name, ext in served[1]:
        assert client.get(f"/img/{name}.{ext}").status_code == 200


def test_exports_of_keyed_experiments_show_content_hashes(
    db_session: Session, demo_set: StimulusSet, stimuli_dir: Path
) -> None:
    from app.services.export import iter_response_rows

    experiment = make_experiment(db_session, demo_set, blobs=BlobStore(stimuli_dir / "blobs"))
    launched = make_launch(db_session, experiment)
    participant, _ = participant_service.enrol(db_session, launched, {"PROLIFIC_PID": "exp-1"})
    participant_service.record_consent(participant, True)
    participant_service.finish_instructions(db_session, participant)
    participant_service.task_page_served(participant)
    from app.schemas import ResponseSubmit
    from app.services.trials import record_response

    record_response(
        db_session,
        participant,
        ResponseSubmit.model_validate_json(json.dumps(answer(0))).to_answer(),
        via_beacon=False,
    )
    rows = list(iter_response_rows(db_session, experiment))
    content_hashes = set(image_hashes(db_session, demo_set.id, "lossless").values())
    upper = rows[0]["query_image_upper"]
    assert upper.split(".")[0] in content_hashes


# --- row 16: weak passwords -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "password",
    ["aaaaaaaaaa", "password123", "qwertyuiop", "second.person@example.org", "second.person1"],
)
def test_common_repeated_or_email_passwords_are_refused(db_session: Session, password: str) -> None:
    before = db_session.scalar(select(func.count()).select_from(User)) or 0
    with pytest.raises(InvalidInput, match="password"):
        auth.create_user(db_session, "second.person@example.org", password, "experimenter")
    assert (db_session.scalar(select(func.count()).select_from(User)) or 0) == before


def test_a_weak_new_password_changes_nothing(db_session: Session) -> None:
    user = auth.create_user(db_session, "third@example.org", "a long enough password", "admin")
    old = user.password_hash
    with pytest.raises(InvalidInput):
        auth.set_password(db_session, user, "third@example.org")
    assert user.password_hash == old


# --- rows 10, 11: audit entries, no existence leaks in the console -------------------------------


def _audit_actions(db_session: Session) -> list[tuple[str, str | None]]:
    rows = db_session.execute(select(AuditLog.action, AuditLog.target).order_by(AuditLog.id))
    return [(action, target) for action, target in rows]


def test_creation_test_mode_and_exports_are_audited(
    client: TestClient, db_session: Session, demo_set: StimulusSet
) -> None:
    owner = make_user(db_session, "audited@example.org")
    db_session.commit()
    token = login(client, owner.email)
    created = client.post(
        "/dashboard/experiments",
        data={
            "csrf_token": token,
            "slug": "audited-1",
            "stimuli": demo_set.slug,
            "preset": "demo",
            "platform_id_export": "raw",
        },
        follow_redirects=False,
    )
    assert created.status_code == 303, created.text
    tried = client.post(
        "/dashboard/experiments/audited-1/try", data={"csrf_token": token}, follow_redirects=False
    )
    assert tried.status_code == 303
    assert client.get("/dashboard/experiments/audited-1/export/participants.csv").status_code == 200
    assert client.get("/dashboard/experiments/audited-1/export/all.json").status_code == 200
    actions = _audit_actions(db_session)
    assert ("experiment.create", "audited-1") in actions
    assert any(action == "experiment.try" for action, _ in actions)
    assert ("experiment.export", "participants") in actions
    assert ("experiment.export", "all") in actions
    raw = db_session.scalar(
        select(AuditLog).where(
            AuditLog.action == "experiment.export", AuditLog.target == "participants"
        )
    )
    assert raw is not None and raw.details["raw_platform_ids"] is True


def test_slug_conflicts_and_shares_do_not_reveal_what_exists(
    client: TestClient, db_session: Session, demo_set: StimulusSet
) -> None:
    make_experiment(db_session, demo_set, slug="someone-elses")
    other = make_user(db_session, "colleague@example.org")
    mine = make_user(db_session, "curious@example.org")
    db_session.commit()
    token = login(client, mine.email)
    taken = client.post(
        "/dashboard/experiments",
        data={
            "csrf_token": token,
            "slug": "someone-elses",
            "stimuli": demo_set.slug,
            "preset": "demo",
        },
    )
    assert taken.status_code == 409
    assert "exists" not in taken.text and "cannot be used" in taken.text
    created = client.post(
        "/dashboard/experiments",
        data={"csrf_token": token, "slug": "mine-1", "stimuli": demo_set.slug, "preset": "demo"},
        follow_redirects=False,
    )
    assert created.status_code == 303
    answers = [
        client.post(
            "/dashboard/experiments/mine-1/shares",
            data={"csrf_token": token, "email": email},
            follow_redirects=False,
        )
        for email in (other.email, "nobody-here@example.org")
    ]
    assert [a.status_code for a in answers] == [303, 303]
    assert answers[0].headers["location"] == answers[1].headers["location"]
    assert "nobody-here" not in str(_audit_actions(db_session))


# --- row 14: plausibility of what participants send ---------------------------------------------


def test_events_after_the_end_are_refused(
    client: TestClient, db_session: Session, demo_set: StimulusSet
) -> None:
    launched = make_launch(db_session, make_experiment(db_session, demo_set))
    db_session.commit()
    token = enrol(client, launched.link_code, {"PROLIFIC_PID": "declines"})
    client.post(f"/p/{token}/consent", data={"decision": "decline"})
    refused = client.post(f"/api/p/{token}/events", json={"events": [{"kind": "focus_lost"}]})
    assert refused.status_code == 409
    assert refused.json()["code"] == "out_of_order"


def test_feedback_on_a_design_that_never_asks_is_refused(
    client: TestClient, db_session: Session, demo_set: StimulusSet
) -> None:
    token, _ = _running(client, db_session, demo_set, "no-feedback-asked")
    for i in range(13):
        assert client.post(f"/api/p/{token}/responses", json=answer(i)).status_code == 200
    posted = client.post(f"/p/{token}/feedback", data={"text": "spam"})
    assert posted.status_code == 409
    participant = db_session.scalar(select(Participant).where(Participant.token == token))
    assert participant is not None and participant.feedback_text is None


def test_answers_before_the_task_page_was_loaded_are_refused(
    client: TestClient, db_session: Session, demo_set: StimulusSet
) -> None:
    launched = make_launch(db_session, make_experiment(db_session, demo_set))
    db_session.commit()
    token = enrol(client, launched.link_code, {"PROLIFIC_PID": "never-loads-the-task"})
    # Consent and instructions by form posts alone, as a script would: the task page that
    # the instructions' redirect leads to is never loaded.
    client.post(f"/p/{token}/consent", data={"decision": "agree"}, follow_redirects=False)
    client.post(f"/p/{token}/instructions", follow_redirects=False)
    refused = client.post(f"/api/p/{token}/responses", json=answer(0))
    assert refused.status_code == 409
    assert refused.json()["code"] == "out_of_order"
    assert "task page" in refused.json()["detail"]
    participant = db_session.scalar(select(Participant).where(Participant.token == token))
    assert participant is not None and participant.status == "in_progress"
    stored = db_session.scalar(
        select(func.count())
        .select_from(TrialResponse)
        .where(TrialResponse.participant_id == participant.id)
    )
    assert stored == 0
    # Loading the page, as every browser does, opens the way.
    assert "trial-config" in client.get(f"/p/{token}").text
    assert client.post(f"/api/p/{token}/responses", json=answer(0)).status_code == 200


FAST_FLAG_OFF = NO_FEEDBACK_DESIGN.replace(
    "[[blocks]]", "[quality]\nmin_median_answer_interval_ms = 0\n\n[[blocks]]", 1
)


def test_implausibly_fast_sessions_are_flagged_in_the_export(
    client: TestClient, db_session: Session, demo_set: StimulusSet
) -> None:
    from app.services.export import iter_participant_rows, iter_table_chunks

    experiment = make_experiment(db_session, demo_set)
    launched = make_launch(db_session, experiment)
    db_session.commit()
    tokens = []
    for pid in ("script-1", "person-1"):
        token = enrol(client, launched.link_code, {"PROLIFIC_PID": pid})
        start_task(client, token)
        for i in range(13):  # within a second, as a script answers
            assert client.post(f"/api/p/{token}/responses", json=answer(i)).status_code == 200
        tokens.append(token)
    # The second one answered as people do: every 2.5 s after the task page.
    person = db_session.scalar(select(Participant).where(Participant.token == tokens[1]))
    assert person is not None and person.task_page_at is not None
    for row in db_session.scalars(
        select(TrialResponse).where(TrialResponse.participant_id == person.id)
    ):
        row.received_at = person.task_page_at + timedelta(seconds=2.5 * (row.trial_index + 1))
    db_session.flush()
    rows = list(iter_participant_rows(db_session, experiment, pseudonym_key=b"k" * 32))
    assert [r["implausibly_fast"] for r in rows] == ["true", "false"]
    assert float(rows[0]["median_answer_interval_ms"]) < 250
    assert float(rows[1]["median_answer_interval_ms"]) == 2500.0
    # Marked, not excluded: the outcome and completion code are the exclusions' business.
    assert [r["excluded"] for r in rows] == ["false", "false"]
    csv_text = "".join(
        iter_table_chunks("participants", db_session, experiment, pseudonym_key=b"k" * 32)
    )
    assert "median_answer_interval_ms,implausibly_fast" in csv_text.splitlines()[0]
    # A design may turn the flag off: not judged.
    token, _ = _running(client, db_session, demo_set, "script-2", FAST_FLAG_OFF)
    for i in range(3):
        assert client.post(f"/api/p/{token}/responses", json=answer(i)).status_code == 200
    quiet = db_session.scalar(select(Participant).where(Participant.token == token))
    assert quiet is not None
    (row,) = iter_participant_rows(db_session, quiet.experiment, pseudonym_key=b"k" * 32)
    assert row["implausibly_fast"] == "" and row["median_answer_interval_ms"] != ""


@pytest.mark.parametrize("rt_ms", [0.0, 5.0, 811.0, 3_000.0])
def test_an_rt_that_disagrees_with_its_own_stamps_is_refused(
    client: TestClient, db_session: Session, demo_set: StimulusSet, rt_ms: float
) -> None:
    token, _ = _running(client, db_session, demo_set, f"rt-{rt_ms}")
    forged = client.post(f"/api/p/{token}/responses", json=answer(0, rt_ms=rt_ms))
    assert forged.status_code == 422
    assert "rt_ms" in forged.json()["detail"]
    # Within rounding it is the browser's own value.
    assert client.post(f"/api/p/{token}/responses", json=answer(0, rt_ms=812.9)).status_code == 200
