"""Answers stored through the participant API come back in responses.csv, the JSON export and
`psychvis analyze` with every per-trial measurement the browser sent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.analysis import analyze, read_responses
from app.export_format import RESPONSE_COLUMNS, TRIAL_MEASUREMENT_SPECS
from app.models import StimulusSet
from app.services import export
from tests.app.routes.test_participant_flow import answer, enrol, start_task
from tests.factories import make_experiment, make_launch

INPUTS = ("mouse", "keyboard", "touch")


def _measurements(participant: int, index: int) -> dict[str, Any]:
    """Distinct, exactly representable values per trial (so a mix-up of rows shows)."""
    onset = 1000.0 + 100 * index + participant
    rt = 500.25 + 10 * index + participant
    return {
        "rt_ms": rt,
        "onset_ms": onset,
        "answer_ms": onset + rt,
        "frame_interval_mean_ms": 16.5 + index / 4,
        "frame_interval_max_ms": 20.0 + index,
        "viewport_w_px": 1200 + index,
        "viewport_h_px": 700 + participant,
        "device_pixel_ratio": 2.0 if index % 2 else 1.25,
        "focus_lost": index % 3 == 0,
        "fullscreen_exited": index % 4 == 1,
        "input": INPUTS[index % 3],
    }


def _run_participant(
    client: TestClient, link: str, participant: int, sent: dict[tuple[str, int], dict[str, Any]]
) -> None:
    token = enrol(client, link, {"PROLIFIC_PID": f"roundtrip-{participant}"})
    n_trials = start_task(client, token)["step"]["n_trials"]
    label = export.participant_label(participant)
    for index in range(n_trials):
        body = answer(
            index, response="upper" if index % 2 else "lower", **_measurements(participant, index)
        )
        if index == 2:
            # A beacon (text/plain) answer, as sent while the page is being left.
            reply = client.post(
                f"/api/p/{token}/responses",
                content=json.dumps(body),
                headers={"content-type": "text/plain;charset=UTF-8"},
            )
        else:
            reply = client.post(f"/api/p/{token}/responses", json=body)
        assert reply.status_code == 200, reply.text
        sent[(label, index)] = {**body, "via_beacon": index == 2}


def test_measurements_round_trip_through_csv_json_and_analyze(
    client: TestClient, db_session: Session, demo_set: StimulusSet, tmp_path: Path
) -> None:
    experiment = make_experiment(db_session, demo_set)
    launched = make_launch(db_session, experiment)
    db_session.commit()
    sent: dict[tuple[str, int], dict[str, Any]] = {}
    for participant in (1, 2):
        _run_participant(client, launched.link_code, participant, sent)

    path = tmp_path / "responses.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        assert export.write_csv(fh, export.iter_response_rows(db_session, experiment)) == len(sent)
    assert path.read_text().splitlines()[0] == ",".join(RESPONSE_COLUMNS)

    frame = read_responses(path, strict=True)
    assert len(frame) == len(sent)
    for row in frame.to_dict(orient="records"):
        body = sent[(row["participant"], row["trial_index"])]
        assert row["response"] == body["response"]
        assert row["rt_ms"] == pytest.approx(body["rt_ms"])
        for name in (
            "onset_ms",
            "answer_ms",
            "frame_interval_mean_ms",
            "frame_interval_max_ms",
            "device_pixel_ratio",
        ):
            assert row[name] == pytest.approx(body[name]), name
        assert row["viewport_w_px"] == body["viewport_w_px"]
        assert row["viewport_h_px"] == body["viewport_h_px"]
        assert row["input_kind"] == body["input"]
        assert row["focus_lost"] == body["focus_lost"]
        assert row["fullscreen_exited"] == body["fullscreen_exited"]
        assert row["via_beacon"] == body["via_beacon"]
        assert row["response_uuid"] == body["response_uuid"]

    result = analyze(frame, ["condition"], validated=True, n_boot=0)
    n_main = int((frame["trial_kind"] == "main").sum())
    assert n_main > 0 and sum(row["n_trials"] for row in result.rows) == n_main
    assert result.summary["n_participants"] == 2

    document = json.loads(
        "".join(export.iter_json_chunks(db_session, experiment, pseudonym_key=b"k" * 32))
    )
    names = [c["name"] for c in document["codebook"]["responses"]]
    assert names[-len(TRIAL_MEASUREMENT_SPECS) :] == [s.name for s in TRIAL_MEASUREMENT_SPECS]
    first = document["responses"][0]
    body = sent[(first["participant"], first["trial_index"])]
    assert first["focus_lost"] is body["focus_lost"]
    assert first["viewport_w_px"] == body["viewport_w_px"]
    assert first["input_kind"] == body["input"]
    assert first["device_pixel_ratio"] == body["device_pixel_ratio"]
