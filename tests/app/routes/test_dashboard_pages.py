"""Dashboard pages end to end through HTTP: import a set, create an experiment, launch and
control sessions, test mode, live counts while a scripted participant answers, the
participant page, GDPR deletion with its audit entry, downloads and the analysis page."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.export_format import PARTICIPANT_COLUMNS, RESPONSE_COLUMNS, TABLE_CODEBOOKS
from app.models import (
    AuditLog,
    Experiment,
    ExperimentSession,
    Participant,
    StimulusSet,
    TrialResponse,
)
from tests.app.routes.dashboard_client import csrf_of, login
from tests.app.routes.test_participant_flow import answer, enrol, start_task
from tests.factories import add_end_rating, make_experiment, make_user


def _zip_folder(folder: Path, target: Path) -> Path:
    with zipfile.ZipFile(target, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder).as_posix())
    return target


def test_import_create_launch_and_control_a_session(
    client: TestClient, db_session: Session, demo_set_path: Path, tmp_path: Path
) -> None:
    make_user(db_session, "owner@example.org")
    db_session.commit()
    token = login(client, "owner@example.org")

    archive = _zip_folder(demo_set_path, tmp_path / "set.zip")
    with archive.open("rb") as fh:
        imported = client.post(
            "/dashboard/stimuli",
            data={"csrf_token": token, "name": "uploaded-demo"},
            files={"archive": ("set.zip", fh, "application/zip")},
            follow_redirects=False,
        )
    assert imported.status_code == 303, imported.text
    set_page = client.get(imported.headers["location"])
    assert set_page.status_code == 200 and "uploaded-demo" in set_page.text
    unit_link = set_page.text.split('href="/dashboard/stimuli/uploaded-demo/units/')[1].split('"')[
        0
    ]
    unit_page = client.get(f"/dashboard/stimuli/uploaded-demo/units/{unit_link}")
    assert unit_page.status_code == 200
    assert unit_page.text.count('src="/img/') >= 4  # reference grids and queries
    not_zip = client.post(
        "/dashboard/stimuli",
        data={"csrf_token": token},
        files={"archive": ("set.zip", b"not a zip", "application/zip")},
    )
    assert not_zip.status_code == 422 and "data-error" in not_zip.text

    created = client.post(
        "/dashboard/experiments",
        data={
            "csrf_token": token,
            "slug": "pilot-1",
            "title": "Pilot",
            "stimuli": "uploaded-demo",
            "preset": "demo",
            "platform_id_export": "raw",
        },
        follow_redirects=False,
    )
    assert created.status_code == 303, created.text
    experiment = db_session.scalar(select(Experiment).where(Experiment.slug == "pilot-1"))
    assert experiment is not None and experiment.platform_id_export == "raw"
    assert experiment.owner_id is not None

    preview = client.get("/dashboard/experiments/pilot-1/preview", params={"participant": 2})
    assert preview.status_code == 200 and "trials per kind and condition" in preview.text

    launched = client.post(
        "/dashboard/experiments/pilot-1/sessions",
        data={
            "csrf_token": token,
            "label": "wave 1",
            "platform": "prolific",
            "completed_code": "DONE1234",
            "failed_checks_code": "FAILED99",
            "failed_checks_url": "https://app.prolific.com/submissions/complete?cc=FAILED99",
            "no_consent_code": "NOCONSENT",
        },
        follow_redirects=False,
    )
    assert launched.status_code == 303
    row = db_session.scalar(
        select(ExperimentSession).where(ExperimentSession.experiment_id == experiment.id)
    )
    assert row is not None and row.platform == "prolific"
    assert row.outcomes["completed"]["code"] == "DONE1234"
    assert row.outcomes["failed_checks"]["url"].endswith("cc=FAILED99")
    assert row.outcomes["no_consent"]["code"] == "NOCONSENT"
    # A code without a URL gets Prolific's completion URL for that code.
    assert row.outcomes["no_consent"]["url"].endswith("cc=NOCONSENT")
    assert row.outcomes["completed"]["url"].endswith("cc=DONE1234")
    page = client.get("/dashboard/experiments/pilot-1").text
    assert f"/s/{row.link_code}" in page  # the participant link to copy

    status_url = f"/dashboard/experiments/pilot-1/sessions/{row.link_code}/status"
    for status in ("paused", "open", "closed"):
        done = client.post(status_url, data={"csrf_token": token, "status": status})
        assert done.status_code == 200
        db_session.refresh(row)
        assert row.status == status
    assert client.post(status_url, data={"csrf_token": token, "status": "open"}).status_code == 409
    assert client.get(f"/s/{row.link_code}").text.count("data-start") == 0


def test_live_counts_participant_page_deletion_and_exports(
    client: TestClient, db_session: Session, demo_set: StimulusSet
) -> None:
    owner = make_user(db_session, "owner@example.org")
    experiment = make_experiment(db_session, demo_set, owner_id=owner.id)
    db_session.commit()
    token = login(client, "owner@example.org")
    client.post(
        f"/dashboard/experiments/{experiment.slug}/sessions",
        data={"csrf_token": token, "platform": "prolific", "completed_code": "OK123"},
    )
    link = db_session.scalar(
        select(ExperimentSession.link_code).where(ExperimentSession.experiment_id == experiment.id)
    )
    live_url = f"/dashboard/api/experiments/{experiment.slug}/live"
    assert client.get(live_url).json()["total"] == 0

    # Test mode: flagged, redirected to the participant page, never counted.
    tried = client.post(
        f"/dashboard/experiments/{experiment.slug}/try",
        data={"csrf_token": token},
        follow_redirects=False,
    )
    assert tried.status_code == 303 and tried.headers["location"].startswith("/p/")
    live = client.get(live_url).json()
    assert live["total"] == 0 and live["test_mode"] == 1

    ptoken = enrol(client, link, {"PROLIFIC_PID": "=hyperlink(1)", "STUDY_ID": "s"})
    assert client.get(live_url).json()["counts"]["started"] == 1
    start_task(client, ptoken)
    n_trials = client.get(f"/api/p/{ptoken}/next").json()["n_trials"]
    for index in range(3):
        assert client.post(f"/api/p/{ptoken}/responses", json=answer(index)).status_code == 200
    client.post(
        f"/api/p/{ptoken}/events",
        json={"events": [{"kind": "fullscreen_exit", "client_ms": 5.0, "trial_index": 2}]},
    )
    live = client.get(live_url).json()
    assert live["counts"]["in_progress"] == 1
    assert live["active"][0]["participant"] == "p00002"  # the test participant was p00001
    assert live["active"][0]["answered"] == 3
    for index in range(3, n_trials):
        client.post(f"/api/p/{ptoken}/responses", json=answer(index, response="lower"))
    client.post(f"/api/p/{ptoken}/complete")
    live = client.get(live_url).json()
    assert live["counts"]["completed"] + live["counts"]["excluded"] == 1
    assert live["median_duration_s"] is not None
    # Accuracy counts included participants only; an excluded one's answers are shown apart.
    included = sum(row["n_trials"] for row in live["accuracy"])
    left_out = sum(row["excluded_trials"] for row in live["accuracy"])
    if live["counts"]["excluded"]:
        assert included == 0 and left_out >= 1
    else:
        assert included >= 1 and left_out == 0
    page = client.get(f"/dashboard/experiments/{experiment.slug}").text
    assert "Excluded participants (trials)" in page
    assert live["catch"]["answered"] >= 1

    # A rating carried over from the old rating pages: no right answer, no response time.
    participant = db_session.scalars(select(Participant).where(Participant.token == ptoken)).one()
    add_end_rating(db_session, participant, -37, rt_ms=None)
    db_session.commit()
    detail = client.get(f"/dashboard/experiments/{experiment.slug}/participants/2")
    assert detail.status_code == 200
    assert "fullscreen_exit" in detail.text and "p00002" in detail.text
    assert "<td>-37</td>" in detail.text
    assert ptoken not in detail.text  # the access token is never shown
    listing = client.get(f"/dashboard/experiments/{experiment.slug}/participants").text
    assert "p00001" in listing and "test" in listing

    responses = client.get(f"/dashboard/experiments/{experiment.slug}/export/responses.csv")
    assert responses.status_code == 200
    assert responses.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(responses.text)))
    assert tuple(rows[0].keys()) == RESPONSE_COLUMNS
    assert len(rows) == n_trials and {r["participant"] for r in rows} == {"p00002"}
    people = client.get(f"/dashboard/experiments/{experiment.slug}/export/participants.csv")
    prow = list(csv.DictReader(io.StringIO(people.text)))
    assert tuple(prow[0].keys()) == PARTICIPANT_COLUMNS and len(prow) == 1
    assert prow[0]["platform_id"].startswith("h-")  # pseudonymised by default
    with_test = client.get(
        f"/dashboard/experiments/{experiment.slug}/export/participants.csv",
        params={"include_test": "true"},
    )
    assert len(list(csv.DictReader(io.StringIO(with_test.text)))) == 2
    client.post(
        f"/dashboard/experiments/{experiment.slug}/settings",
        data={"csrf_token": token, "platform_id_export": "raw"},
    )
    raw = client.get(f"/dashboard/experiments/{experiment.slug}/export/participants.csv").text
    assert "'=hyperlink(1)" in raw  # raw, and neutralised
    events = client.get(f"/dashboard/experiments/{experiment.slug}/export/events.csv").text
    assert "fullscreen_exit" in events
    everything = client.get(f"/dashboard/experiments/{experiment.slug}/export/all.json").json()
    assert set(everything["codebook"]) == set(TABLE_CODEBOOKS)
    assert [c["name"] for c in everything["codebook"]["responses"]] == list(RESPONSE_COLUMNS)
    assert len(everything["responses"]) == n_trials
    assert isinstance(everything["responses"][0]["correct"], bool)
    assert len(everything["participants"]) == 1

    analysis = client.get(f"/dashboard/experiments/{experiment.slug}/analysis")
    assert analysis.status_code == 200
    assert "data-analysis-table" in analysis.text
    assert analysis.text.count('src="data:image/png;base64,') == 4
    # Captions say what is plotted and for how many participants, not the file name.
    assert "<figcaption>Proportion correct of main trials by condition" in analysis.text
    assert "(1 participant; n per bar)" in analysis.text
    grouped = client.get(
        f"/dashboard/experiments/{experiment.slug}/analysis",
        params={"by": "condition,reference_type"},
    ).text
    assert "by condition (bars by reference_type)" in grouped
    by_layer = client.get(
        f"/dashboard/experiments/{experiment.slug}/analysis", params={"by": "nonsense"}
    )
    assert by_layer.status_code == 200 and "unknown grouping column" in by_layer.text

    # GDPR deletion: typed confirmation, rows gone, audit entry without personal data.
    delete_url = f"/dashboard/experiments/{experiment.slug}/participants/2/delete"
    assert client.post(delete_url, data={"csrf_token": token, "confirm": "p2"}).status_code == 422
    gone = client.post(
        delete_url, data={"csrf_token": token, "confirm": "p00002"}, follow_redirects=False
    )
    assert gone.status_code == 303
    assert db_session.scalar(select(Participant.id).where(Participant.token == ptoken)) is None
    assert (
        db_session.scalar(
            select(TrialResponse.id)
            .join(Participant, Participant.id == TrialResponse.participant_id)
            .where(Participant.experiment_id == experiment.id)
        )
        is None
    )
    entry = db_session.scalar(select(AuditLog).where(AuditLog.action == "participant.delete"))
    assert entry is not None and entry.user_id == owner.id
    assert entry.target == "p00002" and entry.experiment_id == experiment.id
    logged = json.dumps({"t": entry.target, "d": entry.details})
    assert ptoken not in logged and "hyperlink" not in logged.lower()
    assert client.get(f"/dashboard/experiments/{experiment.slug}/participants/2").status_code == 404


def test_admin_manages_users_and_sees_the_audit_log(
    client: TestClient, db_session: Session, demo_set: StimulusSet
) -> None:
    make_user(db_session, "admin@example.org", role="admin")
    db_session.commit()
    token = login(client, "admin@example.org")
    short = client.post(
        "/dashboard/users",
        data={"csrf_token": token, "email": "new@example.org", "password": "short"},
    )
    assert short.status_code == 422
    made = client.post(
        "/dashboard/users",
        data={"csrf_token": token, "email": "new@example.org", "password": "long enough pw"},
        follow_redirects=False,
    )
    assert made.status_code == 303
    assert "new@example.org" in client.get("/dashboard/users").text
    assert "user.create" in client.get("/dashboard/audit").text
    login(client, "new@example.org", "long enough pw")
    page = client.get("/dashboard/experiments/new")
    assert page.status_code == 200 and csrf_of(page.text)


def test_console_words_links_and_test_mode_banner(
    client: TestClient, db_session: Session, demo_set: StimulusSet
) -> None:
    owner = make_user(db_session, "owner@example.org")
    experiment = make_experiment(db_session, demo_set, owner_id=owner.id)
    db_session.commit()
    token = login(client, "owner@example.org")
    base = f"/dashboard/experiments/{experiment.slug}"
    page = client.get(base).text
    # One platform select: MTurk's mode is part of it, not a field shown beside Prolific.
    assert "MTurk mode" not in page and 'value="mturk-sandbox"' in page
    client.post(
        f"{base}/sessions",
        data={"csrf_token": token, "platform": "prolific", "completed_code": "OK123"},
    )
    client.post(f"{base}/sessions", data={"csrf_token": token, "platform": "mturk-live"})
    launched = {
        s.platform: s
        for s in db_session.scalars(
            select(ExperimentSession).where(ExperimentSession.experiment_id == experiment.id)
        )
    }
    assert launched["mturk"].mturk_sandbox is False
    page = client.get(base).text
    prolific = launched["prolific"].link_code
    assert (
        f"/s/{prolific}?PROLIFIC_PID={{{{%PROLIFIC_PID%}}}}&amp;STUDY_ID={{{{%STUDY_ID%}}}}"
        f"&amp;SESSION_ID={{{{%SESSION_ID%}}}}" in page
    )
    assert f'/s/{launched["mturk"].link_code}" class="link"' in page
    assert '<a href="/dashboard/docs/console.md">' in page

    # The test participant's pages carry the banner; a real participant's do not.
    tried = client.post(f"{base}/try", data={"csrf_token": token}, follow_redirects=False)
    assert "data-test-mode-banner" in client.get(tried.headers["location"]).text
    ptoken = enrol(client, prolific, {"PROLIFIC_PID": "pid-1", "STUDY_ID": "s"})
    assert "data-test-mode-banner" not in client.get(f"/p/{ptoken}").text
    assert client.post(
        f"/p/{ptoken}/consent", data={"decision": "agree"}, follow_redirects=False
    ).is_redirect

    # A consented participant is "started" on the Live panel, the list and their own page,
    # and their condition (no arms: the conditions of their main blocks in order; the demo
    # design has one) is the same on all three.
    live = client.get(f"/dashboard/api/experiments/{experiment.slug}/live").json()
    (active,) = live["active"]
    assert active["status"] == "started"
    assert active["condition"] == "natural"
    assert [row["condition"] for row in live["by_condition"]] == ["no arms (within-subject)"]
    listing = client.get(f"{base}/participants").text
    assert f"<td>{active['condition']}</td><td>started</td>" in listing
    detail = client.get(f"{base}/participants/{active['number']}").text
    assert "<dd data-status>started</dd>" in detail
    assert f"<dd data-condition>{active['condition']}</dd>" in detail

    # Group-by offers the valid columns; two choices group by both; docs links open.
    analysis = client.get(f"{base}/analysis").text
    assert '<select name="by" data-by="0">' in analysis
    assert '<option value="condition" selected>' in analysis
    assert '<option value="branch" >' in analysis
    assert '<a href="/dashboard/docs/analysis.md">' in analysis
    both = client.get(f"{base}/analysis", params=[("by", "condition"), ("by", "layer")]).text
    assert '<option value="layer" selected>' in both
    doc = client.get("/dashboard/docs/analysis.md")
    assert doc.status_code == 200 and doc.text.startswith("#")
    assert client.get("/dashboard/docs/nothing-here.md").status_code == 404
    assert client.get("/dashboard/docs/..%2Fapp%2Fconfig.md").status_code == 404
