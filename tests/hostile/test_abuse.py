"""Deliberate abuse of the participant server: each attempt gets a clear 4xx, changes nothing
and leaks nothing (forged and foreign tokens, replays, reordering, answers after completion,
impossible values, huge or mistyped bodies, hostile stimulus archives, formula injection)."""

from __future__ import annotations

import csv
import io
import secrets
import uuid
import zipfile
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import ManifestInvalid
from app.models import Participant, StimulusSet, TrialResponse
from app.services.blobs import BlobStore
from app.services.export import iter_participant_rows, write_csv
from app.services.stimuli import import_stimulus_set
from app.stimuli import extracted_zip
from tests.app.routes.test_participant_flow import answer, enrol, start_task
from tests.factories import make_experiment, make_launch

FEEDBACK_DESIGN = """
name = "abuse-feedback"
seed = "abuse"
free_text_feedback = true
every_unit_once = false

[conditions.natural]
reference_type = "natural"
n_references = 9
grid_mode = "min_max"

[[blocks]]
kind = "main"
condition = "natural"
n_trials = 2
"""


def _count_rows(db_session: Session) -> int:
    return db_session.scalar(select(func.count()).select_from(TrialResponse)) or 0


def _running(client: TestClient, db_session: Session, demo_set: StimulusSet, pid: str) -> str:
    launched = make_launch(db_session, make_experiment(db_session, demo_set))
    db_session.commit()
    token = enrol(client, launched.link_code, {"PROLIFIC_PID": pid})
    start_task(client, token)
    return token


def _assert_error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text[:300])
    body = response.json()
    assert set(body) == {"code", "detail"}
    if code is not None:
        assert body["code"] == code
    return body


@pytest.fixture()
def token(client: TestClient, db_session: Session, demo_set: StimulusSet) -> str:
    return _running(client, db_session, demo_set, "abuser-1")


# --- tokens ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "forged",
    [
        secrets.token_urlsafe(24),
        "x" * 65,
        "x" * 5000,
        "..%2F..%2Fetc%2Fpasswd",
        "' OR '1'='1",
        "%00",
    ],
)
def test_forged_tokens_get_404_on_every_endpoint(
    client: TestClient, db_session: Session, token: str, forged: str
) -> None:
    before = _count_rows(db_session)
    for method, path, kwargs in [
        ("GET", "/api/p/{t}/next", {}),
        ("POST", "/api/p/{t}/responses", {"json": answer(0)}),
        ("POST", "/api/p/{t}/events", {"json": {"events": []}}),
        ("POST", "/api/p/{t}/complete", {}),
    ]:
        response = client.request(method, path.format(t=forged), **kwargs)
        assert response.status_code == 404, (path, response.status_code)
        assert response.json()["code"] == "not_found"
    assert client.get(f"/p/{forged}").status_code == 404
    assert client.post(f"/p/{forged}/consent", data={"decision": "agree"}).status_code == 404
    assert _count_rows(db_session) == before


def test_another_participants_answer_id_is_refused_and_reveals_nothing(
    client: TestClient, db_session: Session, demo_set: StimulusSet, token: str
) -> None:
    other = _running(client, db_session, demo_set, "abuser-2")
    mine = answer(0)
    assert client.post(f"/api/p/{token}/responses", json=mine).status_code == 200
    # The victim's token with the attacker's uuid: no duplicate ack, no correctness, no rows.
    stolen = client.post(f"/api/p/{other}/responses", json=mine)
    body = _assert_error(stolen, 409, "out_of_order")
    assert "correct" not in stolen.text and token not in stolen.text
    assert body["detail"] == "this response id was used before"
    victim = db_session.scalar(select(Participant).where(Participant.token == other))
    assert victim is not None
    assert (
        db_session.scalar(
            select(func.count())
            .select_from(TrialResponse)
            .where(TrialResponse.participant_id == victim.id)
        )
        == 0
    )


# --- replays and ordering ------------------------------------------------------------------------


def test_replayed_answer_with_changed_content_keeps_the_first_one(
    client: TestClient, db_session: Session, token: str
) -> None:
    first = answer(0, response="upper", confidence=1)
    ack = client.post(f"/api/p/{token}/responses", json=first).json()
    assert ack["duplicate"] is False
    tampered = {**first, "response": "lower", "confidence": 3, "rt_ms": 1.0, "answer_ms": 1001.0}
    replay = client.post(f"/api/p/{token}/responses", json=tampered)
    assert replay.status_code == 200 and replay.json()["duplicate"] is True
    rows = db_session.scalars(
        select(TrialResponse).where(TrialResponse.response_uuid == first["response_uuid"])
    ).all()
    assert [(r.answer["response"], r.answer["confidence"], r.rt_ms) for r in rows] == [
        ("upper", 1, 812.5)
    ]


def test_reordered_and_skipped_answers_are_refused(
    client: TestClient, db_session: Session, token: str
) -> None:
    before = _count_rows(db_session)
    _assert_error(client.post(f"/api/p/{token}/responses", json=answer(1)), 409, "out_of_order")
    _assert_error(client.post(f"/api/p/{token}/responses", json=answer(10_000)), 409)
    _assert_error(client.post(f"/api/p/{token}/responses", json=answer(-1)), 422)
    assert _count_rows(db_session) == before
    assert client.post(f"/api/p/{token}/responses", json=answer(0)).status_code == 200
    # A second, different answer to the same trial (a second tab) is refused.
    _assert_error(client.post(f"/api/p/{token}/responses", json=answer(0)), 409, "out_of_order")
    assert _count_rows(db_session) == before + 1


def test_answers_after_completion_are_refused(
    client: TestClient, db_session: Session, token: str
) -> None:
    step = client.get(f"/api/p/{token}/next").json()
    # Completing early is refused (no code before every answer is stored).
    _assert_error(client.post(f"/api/p/{token}/complete"), 409)
    while step["step"] == "trial":
        step = client.post(
            f"/api/p/{token}/responses", json=answer(step["trial"]["trial_index"])
        ).json()["next"]
    done = client.post(f"/api/p/{token}/complete")
    assert done.status_code == 200
    before = _count_rows(db_session)
    late = client.post(f"/api/p/{token}/responses", json=answer(step["n_trials"] - 1))
    _assert_error(late, 409, "out_of_order")
    _assert_error(client.post(f"/api/p/{token}/responses", json=answer(0)), 409)
    assert _count_rows(db_session) == before
    assert client.post(f"/api/p/{token}/complete").json() == done.json()


# --- impossible values, sizes and types ----------------------------------------------------------


@pytest.mark.parametrize(
    "override",
    [
        {"rt_ms": -1},
        {"rt_ms": 1e308},
        {"rt_ms": 3_600_001},
        {"onset_ms": -5},
        {"confidence": 0},
        {"confidence": 99},
        {"response": "both"},
        {"trial_index": "0; DROP TABLE trial_response"},
        {"viewport_w_px": -1},
        {"device_pixel_ratio": 0},
        {"input": "<script>"},
        {"response_uuid": "00000000"},
        {"admin": True},
    ],
)
def test_impossible_values_get_422(
    client: TestClient, db_session: Session, token: str, override: dict[str, Any]
) -> None:
    before = _count_rows(db_session)
    _assert_error(
        client.post(f"/api/p/{token}/responses", json={**answer(0), **override}),
        422,
        "invalid_input",
    )
    assert _count_rows(db_session) == before


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e999"])
def test_non_finite_numbers_get_422(
    client: TestClient, db_session: Session, token: str, literal: bytes
) -> None:
    body = answer(0)
    raw = (
        b'{"response_uuid": "%s", "trial_index": 0, "response": "upper", "confidence": 2, '
        b'"rt_ms": %s, "onset_ms": 1.0, "answer_ms": 2.0}'
        % (body["response_uuid"].encode(), literal)
    )
    before = _count_rows(db_session)
    response = client.post(
        f"/api/p/{token}/responses", content=raw, headers={"content-type": "application/json"}
    )
    _assert_error(response, 422)
    assert _count_rows(db_session) == before


def test_enormous_bodies_get_413_declared_or_streamed(
    client: TestClient, db_session: Session, token: str
) -> None:
    before = _count_rows(db_session)
    huge = {**answer(0), "padding": "x" * (2 * 1024 * 1024)}
    _assert_error(client.post(f"/api/p/{token}/responses", json=huge), 413, "payload_too_large")

    def chunks() -> Any:
        for _ in range(64):
            yield b"x" * 4096

    streamed = client.post(
        f"/api/p/{token}/responses", content=chunks(), headers={"content-type": "application/json"}
    )
    _assert_error(streamed, 413, "payload_too_large")
    events = {"events": [{"kind": "resize", "client_ms": 1.0, "data": {"x": "y" * 100}}] * 5000}
    _assert_error(client.post(f"/api/p/{token}/events", json=events), 413)
    assert _count_rows(db_session) == before


def test_enormous_header_values_do_not_break_the_app(client: TestClient, token: str) -> None:
    # Header size limits belong to the HTTP server (uvicorn/nginx, see docs/deploy.md); in the
    # app, a huge header must not change the outcome of a request.
    response = client.get(f"/api/p/{token}/next", headers={"x-junk": "j" * 200_000})
    assert response.status_code == 200


@pytest.mark.parametrize(
    "content_type",
    [
        "application/xml",
        "multipart/form-data; boundary=x",
        "application/x-www-form-urlencoded",
        "image/png",
    ],
)
def test_wrong_content_types_get_415(
    client: TestClient, db_session: Session, token: str, content_type: str
) -> None:
    before = _count_rows(db_session)
    import json

    response = client.post(
        f"/api/p/{token}/responses",
        content=json.dumps(answer(0)).encode(),
        headers={"content-type": content_type},
    )
    _assert_error(response, 415, "unsupported_media_type")
    assert _count_rows(db_session) == before


def test_unknown_methods_and_paths_get_clean_4xx(client: TestClient, token: str) -> None:
    _assert_error(client.delete(f"/api/p/{token}/responses"), 405)
    _assert_error(client.put(f"/api/p/{token}/next"), 405)
    _assert_error(client.get("/api/p/x/../../etc/passwd"), 404)
    assert client.get("/img/..%2F..%2Fetc%2Fpasswd").status_code == 404
    assert client.get("/static/../app/config.py").status_code == 404


# --- stimulus import -----------------------------------------------------------------------------


def _zip(path: Path, members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _stimulus_sets(db_session: Session) -> int:
    return db_session.scalar(select(func.count()).select_from(StimulusSet)) or 0


@pytest.mark.parametrize(
    "name",
    ["../evil.txt", "set/../../evil.txt", "/abs/evil.txt", "set\\..\\evil.txt", "C:/evil.txt"],
)
def test_zip_entries_that_leave_the_folder_are_refused(
    db_session: Session, tmp_path: Path, stimuli_dir: Path, name: str
) -> None:
    archive = _zip(tmp_path / "traversal.zip", {"set/manifest.json": b"{}", name: b"owned"})
    before = _stimulus_sets(db_session)
    with pytest.raises(ManifestInvalid, match="leaves the extraction folder"):
        import_stimulus_set(db_session, archive, BlobStore(stimuli_dir / "blobs"))
    assert _stimulus_sets(db_session) == before
    assert not (tmp_path.parent / "evil.txt").exists()


def test_zip_with_a_symlink_is_refused(
    db_session: Session, tmp_path: Path, stimuli_dir: Path
) -> None:
    path = tmp_path / "link.zip"
    with zipfile.ZipFile(path, "w") as archive:
        info = zipfile.ZipInfo("set/passwd")
        info.external_attr = 0o120777 << 16  # S_IFLNK
        archive.writestr(info, "/etc/passwd")
    with pytest.raises(ManifestInvalid, match="symbolic link"):
        import_stimulus_set(db_session, path, BlobStore(stimuli_dir / "blobs"))


def test_zip_bomb_is_refused_without_inflating_it(
    db_session: Session, tmp_path: Path, stimuli_dir: Path
) -> None:
    bomb = _zip(
        tmp_path / "bomb.zip", {"set/manifest.json": b"{}", "set/zeros.png": bytes(64 << 20)}
    )
    assert bomb.stat().st_size < 1 << 20
    with pytest.raises(ManifestInvalid, match="zip bomb"):
        import_stimulus_set(db_session, bomb, BlobStore(stimuli_dir / "blobs"))


def test_zip_over_the_total_size_limit_is_refused(tmp_path: Path) -> None:
    archive = _zip(
        tmp_path / "big.zip",
        {f"set/{i}.bin": secrets.token_bytes(64 * 1024) for i in range(4)},
        compression=zipfile.ZIP_STORED,
    )
    with (
        pytest.raises(ManifestInvalid, match="limit"),
        extracted_zip(archive, max_total_bytes=100_000),
    ):
        pass


@pytest.mark.parametrize("content", [b"not a zip at all", b"PK\x03\x04garbage"])
def test_corrupt_archives_are_refused(
    db_session: Session, tmp_path: Path, stimuli_dir: Path, content: bytes
) -> None:
    path = tmp_path / "corrupt.zip"
    path.write_bytes(content)
    with pytest.raises(ManifestInvalid):
        import_stimulus_set(db_session, path, BlobStore(stimuli_dir / "blobs"))


def test_manifest_paths_outside_the_set_are_refused(
    db_session: Session, tmp_path: Path, stimuli_dir: Path, demo_set_path: Path
) -> None:
    import json
    import shutil

    copy = tmp_path / "set"
    shutil.copytree(demo_set_path, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    text = json.dumps(manifest)
    first = manifest["units"][0]["natural"]["batches"][0]["max_query"]["path"]
    (copy / "manifest.json").write_text(text.replace(f'"{first}"', '"../../../etc/passwd"', 1))
    before = _stimulus_sets(db_session)
    with pytest.raises(ManifestInvalid):
        import_stimulus_set(db_session, copy, BlobStore(stimuli_dir / "blobs"), set_id="evil")
    assert _stimulus_sets(db_session) == before


# --- free text that lands in CSV -----------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    ['=HYPERLINK("http://evil.example","x")', "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"],
)
def test_formula_injection_in_feedback_is_neutralised_in_the_csv(
    client: TestClient, db_session: Session, demo_set: StimulusSet, tmp_path: Path, payload: str
) -> None:
    design = tmp_path / "abuse-feedback.toml"
    design.write_text(FEEDBACK_DESIGN, encoding="utf-8")
    experiment = make_experiment(db_session, demo_set, design=str(design))
    launched = make_launch(db_session, experiment)
    db_session.commit()
    token = enrol(client, launched.link_code, {"PROLIFIC_PID": f"formula-{uuid.uuid4().hex[:6]}"})
    client.post(f"/p/{token}/consent", data={"decision": "agree"})
    client.post(f"/p/{token}/instructions")
    step = client.get(f"/api/p/{token}/next").json()
    while step["step"] == "trial":
        step = client.post(
            f"/api/p/{token}/responses", json=answer(step["trial"]["trial_index"])
        ).json()["next"]
    assert client.post(f"/p/{token}/feedback", data={"text": payload}).status_code in (200, 303)
    out = io.StringIO()
    rows = iter_participant_rows(db_session, experiment, pseudonym_key=b"k" * 32)
    from app.export_format import PARTICIPANT_CODEBOOK, PARTICIPANT_COLUMNS

    write_csv(out, rows, PARTICIPANT_COLUMNS, PARTICIPANT_CODEBOOK)
    cells = next(csv.DictReader(io.StringIO(out.getvalue())))
    # Stored stripped of surrounding whitespace; whatever is left cannot start a formula.
    assert cells["feedback_text"] == "'" + payload.strip()
    assert token not in out.getvalue()


# --- NUL bytes (Postgres text cannot hold them) --------------------------------------------------


def test_nul_bytes_in_links_tokens_and_fields_get_4xx_not_500(
    client: TestClient, db_session: Session, demo_set: StimulusSet, token: str
) -> None:
    launched = make_launch(db_session, make_experiment(db_session, demo_set))
    db_session.commit()
    assert client.get("/s/%00").status_code == 404
    assert client.post("/s/a%00b/start", data={"PROLIFIC_PID": "x"}).status_code == 404
    assert client.get(f"/api/p/{token}%00/next").status_code == 404
    started = client.post(
        f"/s/{launched.link_code}/start",
        data={"PROLIFIC_PID": "nul\x00pid"},
        follow_redirects=False,
    )
    assert 300 <= started.status_code < 500, started.status_code
    # In production every request has its own session; this test shares one, so it rolls back
    # what a refused request left behind, as closing the request's session does.
    db_session.rollback()
    events = {"events": [{"kind": "resize", "client_ms": 1.0, "data": {"k": "a\u0000b"}}]}
    assert client.post(f"/api/p/{token}/events", json=events).status_code in (200, 422)
    db_session.rollback()
    bad_answer = {**answer(0), "input": "mouse\u0000"}
    assert client.post(f"/api/p/{token}/responses", json=bad_answer).status_code == 422


# --- the experimenter console --------------------------------------------------------------------


def _dashboard_urls(slug: str) -> list[str]:
    return [
        "/dashboard",
        "/dashboard/stimuli",
        "/dashboard/experiments/new",
        f"/dashboard/experiments/{slug}",
        f"/dashboard/experiments/{slug}/participants",
        f"/dashboard/experiments/{slug}/participants/1",
        f"/dashboard/experiments/{slug}/export/responses.csv",
        f"/dashboard/experiments/{slug}/export/participants.csv",
        f"/dashboard/experiments/{slug}/export/all.json",
        f"/dashboard/experiments/{slug}/analysis",
        f"/dashboard/api/experiments/{slug}/live",
        "/dashboard/users",
        "/dashboard/audit",
        "/dashboard/account",
    ]


def test_dashboard_urls_without_a_session_reveal_nothing(
    client: TestClient, db_session: Session, demo_set: StimulusSet
) -> None:
    experiment = make_experiment(db_session, demo_set, slug="secret-study")
    make_launch(db_session, experiment)
    db_session.commit()
    client.cookies.clear()
    for url in _dashboard_urls(experiment.slug):
        response = client.get(url, follow_redirects=False)
        assert response.status_code in (303, 401), (url, response.status_code)
        if response.status_code == 303:
            assert response.headers["location"].startswith("/dashboard/login"), url
        assert "secret-study" not in response.text.replace("%2F", "/").split("next=")[0], url
        assert "participant_number" not in response.text, url
    # A forged session cookie is no better than none.
    client.cookies.set("psychvis_session", "forged.value.here")
    assert client.get("/dashboard", follow_redirects=False).status_code in (303, 401)
    client.cookies.clear()


def test_dashboard_posts_without_csrf_token_are_refused_and_change_nothing(
    client: TestClient, db_session: Session, demo_set: StimulusSet
) -> None:
    from app.models import ExperimentSession
    from tests.app.routes.dashboard_client import login
    from tests.factories import make_user

    make_user(db_session, "owner-csrf@example.org")
    experiment = make_experiment(db_session, demo_set)
    db_session.commit()
    # Logged out: a state-changing post is refused before anything else.
    client.cookies.clear()
    url = f"/dashboard/experiments/{experiment.slug}/sessions"
    assert client.post(url, data={"platform": "lab"}).status_code in (401, 403)
    login(client, "owner-csrf@example.org")
    before = db_session.scalar(select(func.count()).select_from(ExperimentSession))
    for data in ({"platform": "lab"}, {"platform": "lab", "csrf_token": "forged"}):
        response = client.post(url, data=data, follow_redirects=False)
        assert response.status_code in (403, 404), (data, response.status_code)
    no_token_logout = client.post("/dashboard/logout", follow_redirects=False)
    assert no_token_logout.status_code == 403
    assert db_session.scalar(select(func.count()).select_from(ExperimentSession)) == before
    # The login form itself needs the token too (no login CSRF).
    client.cookies.clear()
    forged_login = client.post(
        "/dashboard/login",
        data={"email": "owner-csrf@example.org", "password": "correct horse battery"},
        follow_redirects=False,
    )
    assert forged_login.status_code == 403
    assert client.get("/dashboard", follow_redirects=False).status_code in (303, 401)


def test_login_brute_force_is_throttled_even_for_the_right_password(
    client: TestClient, db_session: Session
) -> None:
    from tests.app.routes.dashboard_client import csrf_of
    from tests.factories import make_user

    make_user(db_session, "target@example.org")
    db_session.commit()
    client.cookies.clear()
    statuses = []
    for attempt in range(12):
        form = client.get("/dashboard/login")
        response = client.post(
            "/dashboard/login",
            data={
                "csrf_token": csrf_of(form.text),
                "email": "target@example.org",
                "password": f"guess-{attempt}",
            },
            follow_redirects=False,
        )
        statuses.append(response.status_code)
    assert statuses[0] == 401
    assert 429 in statuses, statuses
    throttled = statuses.index(429)
    assert throttled <= 6, statuses
    form = client.get("/dashboard/login")
    right = client.post(
        "/dashboard/login",
        data={
            "csrf_token": csrf_of(form.text),
            "email": "target@example.org",
            "password": "correct horse battery",
        },
        follow_redirects=False,
    )
    assert right.status_code == 429 and int(right.headers["retry-after"]) > 0
    # An unknown account gets the same answer as a wrong password (no account enumeration).
    form = client.get("/dashboard/login")
    unknown = client.post(
        "/dashboard/login",
        data={"csrf_token": csrf_of(form.text), "email": "nobody@example.org", "password": "x"},
        follow_redirects=False,
    )
    assert unknown.status_code in (401, 429)
    if unknown.status_code == 401:
        assert "Wrong email or password." in unknown.text


@pytest.mark.parametrize(
    "override",
    [
        {"rt_ms": False},
        {"rt_ms": "812.5"},
        {"answer_ms": True},
        {"focus_lost": 1},
        {"trial_index": 0.0},
    ],
)
def test_values_of_the_wrong_json_type_are_not_coerced(
    client: TestClient, db_session: Session, token: str, override: dict[str, Any]
) -> None:
    before = _count_rows(db_session)
    _assert_error(
        client.post(f"/api/p/{token}/responses", json={**answer(0), **override}),
        422,
        "invalid_input",
    )
    assert _count_rows(db_session) == before
