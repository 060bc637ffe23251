"""What participants are told and shown, from the server's side: the landing page's screen
check and its way back, instructions generated from the design, the feedback style and
minimum scale in the task page's config, the end-of-practice flag, the stored display scale."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app import designs
from app.config import Settings
from app.models import Participant, StimulusSet, TrialResponse
from app.tasks.afc2.screen import window_needed_px
from tests.app.routes.test_participant_flow import answer, enrol, give_start_ratings, start_task
from tests.app.test_designs_through_api import _import
from tests.factories import make_experiment, make_launch


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_landing_states_the_window_the_design_needs(
    client: TestClient, db_session: Session, demo_set: StimulusSet
) -> None:
    experiment = make_experiment(db_session, demo_set)
    launched = make_launch(db_session, experiment)
    db_session.commit()
    page = client.get(f"/s/{launched.link_code}").text
    w, h = window_needed_px(designs.load_design("demo"))
    assert (w, h) == (1275, 652)  # the 1700 x 728 stage at 0.75, plus the page around it
    assert f'data-need-w="{w}" data-need-h="{h}"' in page
    assert f"{w} × {h}" in page
    assert "/static/landing.js" in page


def test_screen_size_is_stored_at_the_start(
    client: TestClient, db_session: Session, demo_set: StimulusSet
) -> None:
    launched = make_launch(db_session, make_experiment(db_session, demo_set))
    db_session.commit()
    token = enrol(
        client,
        launched.link_code,
        {"PROLIFIC_PID": "screen-1", "screen_w_px": "1536", "screen_h_px": "864"},
    )
    participant = db_session.scalar(select(Participant).where(Participant.token == token))
    assert participant is not None
    assert (participant.screen_w_px, participant.screen_h_px) == (1536, 864)
    bad = client.post(
        f"/s/{launched.link_code}/start",
        data={"PROLIFIC_PID": "screen-2", "screen_w_px": "-5"},
        follow_redirects=False,
    )
    assert bad.status_code == 422


def test_screen_too_small_gets_its_own_way_back_and_enrols_nobody(
    client: TestClient, db_session: Session, demo_set: StimulusSet
) -> None:
    experiment = make_experiment(db_session, demo_set)
    with_code = make_launch(
        db_session, experiment, outcomes={"screen_too_small": {"code": "SMALL1"}}
    )
    without_code = make_launch(db_session, experiment)
    lab = make_launch(db_session, experiment, platform="lab")
    db_session.commit()
    page = client.post(
        f"/s/{with_code.link_code}/screen-too-small",
        data={"screen_w_px": "390", "screen_h_px": "844"},
    )
    assert page.status_code == 200
    assert "data-completion-code>SMALL1<" in page.text
    assert "return the study on Prolific" in page.text
    plain = client.post(f"/s/{without_code.link_code}/screen-too-small").text
    assert "data-completion-code" not in plain and "return the study on Prolific" in plain
    assert "tell the experimenter" in client.post(f"/s/{lab.link_code}/screen-too-small").text
    assert client.post("/s/no-such-link/screen-too-small").status_code == 404
    n = db_session.scalar(
        select(func.count())
        .select_from(Participant)
        .where(Participant.experiment_id == experiment.id)
    )
    assert n == 0


@pytest.mark.parametrize(
    ("preset", "expected", "absent"),
    [
        (
            "imi",
            [
                '"Correct!" or "Incorrect!" appears',
                "The buttons unlock 1.5 seconds after the images appear",
                "Practice is repeated until every practice trial is answered correctly (at most 5 times)",
                "The study has 2 blocks (50 trials; the first block is practice)",
                "After each practice block you see how many",
            ],
            ["black frame", "break"],
        ),
        (
            "paper-exp1",
            [
                "your choice gets a black frame, then the correct image a green frame",
                "Some screens show no examples at all",
            ],
            ["unlock", '"Correct!"', "In the main trials you will not see this"],
        ),
        (
            "paper-exp2",
            [
                "Some screens show only the right side",
                "Some screens show only one example per side",
                # The 2-AFC part only: the 3 + 3 ratings are not counted.
                "The study has 24 blocks (216 trials",
            ],
            ["unlock", '"Correct!"'],
        ),
    ],
)
def test_instructions_say_what_the_design_does(
    preset: str,
    expected: list[str],
    absent: list[str],
    client: TestClient,
    db_session: Session,
    settings: Settings,
    tmp_path: Path,
) -> None:
    stimulus_set = _import(db_session, settings, tmp_path, preset)
    launched = make_launch(db_session, make_experiment(db_session, stimulus_set, design=preset))
    db_session.commit()
    token = enrol(client, launched.link_code, {"PROLIFIC_PID": f"instr-{preset}"})
    client.post(f"/p/{token}/consent", data={"decision": "agree"})
    page = give_start_ratings(client, token)
    assert "How the task works" in page
    text = _text(page)
    for phrase in expected:
        assert phrase in text, phrase
    for phrase in absent:
        assert phrase not in text, phrase
    # The example screen shows the made-up example unit, never a stimulus of the study.
    example = page[page.index("data-example") :]
    images = re.findall(r'<img class="stim" src="([^"]+)"', example)
    assert len(images) == 20 and all(src.startswith("/static/example/") for src in images)
    assert "/img/" not in example
    assert "data-response" not in example  # its buttons only look like the real ones
    for src in set(images):
        assert client.get(src).status_code == 200


def test_task_config_and_trials_carry_the_design_view(
    client: TestClient, db_session: Session, settings: Settings, tmp_path: Path
) -> None:
    stimulus_set = _import(db_session, settings, tmp_path, "imi")
    launched = make_launch(db_session, make_experiment(db_session, stimulus_set, design="imi"))
    db_session.commit()
    token = enrol(client, launched.link_code, {"PROLIFIC_PID": "view-1"})
    config = start_task(client, token)
    assert config["feedback_style"] == "text" and config["min_scale"] == 0.75
    step = config["step"]
    assert step["trial"]["block"]["after_practice"] is False
    # Answer the practice block correctly: the first main trial says practice is over.
    while step["trial"]["block"]["kind"] == "practice":
        first = client.post(
            f"/api/p/{token}/responses",
            json=answer(step["trial"]["trial_index"], display_scale=0.8),
        ).json()
        step = first["next"]
    assert step["trial"]["block"]["after_practice"] is True
    rows = db_session.scalars(
        select(TrialResponse).join(Participant).where(Participant.token == token)
    ).all()
    assert rows and all(r.display_scale == 0.8 for r in rows)
    assert (
        client.post(
            f"/api/p/{token}/responses",
            json=answer(step["trial"]["trial_index"], display_scale=1.5),
        ).status_code
        == 422
    )
