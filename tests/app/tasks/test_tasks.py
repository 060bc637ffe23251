"""The trial-type interface: discovery of types, and the 2-AFC type's own behaviour."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

import app.tasks
from app.designs import generate_schedule, parse_design
from app.errors import DesignInvalid
from app.schedule import TrialSpec
from app.tasks import TrialType, answer_union, task_of, tasks
from app.tasks.afc2 import TASK as AFC2

UNIT = SimpleNamespace(
    data={
        "natural": {
            "batches": [
                {
                    "batch": 0,
                    "max_references": [{"path": f"nmax{i}"} for i in range(9)],
                    "min_references": [{"path": f"nmin{i}"} for i in range(9)],
                    "max_query": {"path": "qmax"},
                    "min_query": {"path": "qmin"},
                }
            ]
        },
        "synthetic": {
            "max_references": [{"path": f"smax{i}"} for i in range(9)],
            "min_references": [{"path": f"smin{i}"} for i in range(9)],
        },
    }
)
NAMES = {
    path: f"{path}.webp"
    for path in ["qmax", "qmin"]
    + [f"{kind}{side}{i}" for kind in "ns" for side in ("max", "min") for i in range(9)]
}


def spec(**changes: Any) -> TrialSpec:
    values: dict[str, Any] = {
        "trial_index": 0,
        "block_index": 0,
        "trial_kind": "main",
        "condition": "natural",
        "reference_type": "natural",
        "n_references": 9,
        "grid_mode": "min_max",
        "unit_id": "u",
        "batch": 0,
        "query_order": "max_lower",
    }
    return TrialSpec(**(values | changes))


def test_the_2afc_type_lays_out_scores_and_exports_a_trial() -> None:
    trial = spec()
    display = AFC2.display(trial, UNIT, NAMES)  # type: ignore[arg-type]
    assert display["upper"] == "qmin.webp" and display["lower"] == "qmax.webp"
    assert display["max"] == [f"nmax{i}.webp" for i in range(9)]
    solution = AFC2.solution(trial)
    assert solution == {"response": "lower"}
    row = {"task": "afc2", "grid_mode": "min_max", "n_references": 9, "display": display}
    payload = AFC2.payload(row)
    assert payload["queries"] == {"upper": "/img/qmin.webp", "lower": "/img/qmax.webp"}
    assert "solution" not in payload and "query_order" not in payload
    assert AFC2.preload(display)[-2:] == ["qmin.webp", "qmax.webp"]
    right, wrong = {"response": "lower", "confidence": 3}, {"response": "upper", "confidence": 1}
    assert AFC2.is_correct(right, solution) is True
    assert AFC2.is_correct(wrong, solution) is False
    assert AFC2.is_correct(right, None) is None
    assert AFC2.export_values(wrong, solution) == {
        "response": "upper",
        "correct_response": "lower",
        "confidence": 1,
        "conf_rating": 1,
    }
    assert AFC2.export_values(right, solution)["conf_rating"] == -3
    assert [c.name for c in AFC2.export_columns] == [
        "response",
        "correct_response",
        "confidence",
        "conf_rating",
    ]


def test_mixed_references_alternate_and_catch_queries_are_shown_references() -> None:
    mixed = AFC2.display(spec(reference_type="mixed"), UNIT, NAMES)  # type: ignore[arg-type]
    assert mixed["max"][:4] == ["smax0.webp", "nmax0.webp", "smax1.webp", "nmax1.webp"]
    catch = AFC2.display(  # type: ignore[arg-type]
        spec(catch_query_indices=(2, 5), query_order="max_upper"), UNIT, NAMES
    )
    assert catch["upper"] == catch["max"][2] and catch["lower"] == catch["min"][5]


def test_an_answer_is_validated_by_its_types_model() -> None:
    adapter: TypeAdapter[Any] = TypeAdapter(answer_union())
    assert adapter.validate_python({"task": "afc2", "response": "upper", "confidence": 2})
    for bad in (
        {"task": "afc2", "response": "left", "confidence": 2},
        {"task": "afc2", "response": "upper", "confidence": 2, "extra": 1},
        {"task": "afc2", "response": "upper", "confidence": "2"},
    ):
        with pytest.raises(ValidationError):
            adapter.validate_python(bad)


@pytest.fixture
def extra_type(tmp_path: Path) -> Iterator[None]:
    """A third-party type in its own folder, found without an edit to app/tasks."""
    folder = tmp_path / "echo"
    folder.mkdir()
    (folder / "__init__.py").write_text(
        "from typing import Literal\n"
        "from pydantic import BaseModel\n"
        "from app.tasks.base import AnswerFields, TrialType\n"
        "class EchoAnswer(AnswerFields):\n"
        "    task: Literal['echo']\n"
        "    word: str\n"
        "class EchoPayload(BaseModel):\n"
        "    task: Literal['echo']\n"
        "class Echo(TrialType):\n"
        "    name = 'echo'\n"
        "    Answer = EchoAnswer\n"
        "    Payload = EchoPayload\n"
        "    def display(self, spec, unit, names): return {}\n"
        "    def solution(self, spec): return None\n"
        "    def payload(self, trial): return {'task': 'echo'}\n"
        "    def preload(self, display): return []\n"
        "    def export_values(self, answer, solution): return {}\n"
        "TASK = Echo()\n"
    )
    app.tasks.__path__.append(str(tmp_path))
    tasks.cache_clear()
    yield
    app.tasks.__path__.remove(str(tmp_path))
    sys.modules.pop("app.tasks.echo", None)
    tasks.cache_clear()


def test_a_type_in_its_own_folder_is_found_and_answers_are_told_apart(extra_type: None) -> None:
    assert set(tasks()) == {"afc2", "rating", "echo"}
    assert isinstance(task_of("echo"), TrialType) and task_of(None) is AFC2
    adapter: TypeAdapter[Any] = TypeAdapter(answer_union())
    assert adapter.validate_python({"task": "echo", "word": "hi"}).word == "hi"
    with pytest.raises(ValidationError):
        adapter.validate_python({"task": "echo", "response": "upper", "confidence": 2})


RATING_SPEC = TrialSpec(
    trial_index=0,
    block_index=0,
    task="rating",
    trial_kind="task",
    condition="start",
    unit_id="u",
    feedback=False,
)


def test_the_rating_type_shows_nine_of_each_kind_and_has_no_right_answer() -> None:
    rating = task_of("rating")
    display = rating.display(RATING_SPEC, UNIT, NAMES)  # type: ignore[arg-type]
    assert display == {
        "synthetic": [f"smax{i}.webp" for i in range(9)],
        "natural": [f"nmax{i}.webp" for i in range(9)],
    }
    assert rating.solution(RATING_SPEC) is None
    assert rating.is_correct({"value": 40}, None) is None
    assert rating.preload(display) == [*display["synthetic"], *display["natural"]]
    payload = rating.payload({"condition": "start", "display": display, "solution": None})
    assert payload["position"] == "start" and payload["scale"]["min"] == -100
    assert payload["images"]["natural"][0] == "/img/nmax0.webp"
    assert "solution" not in payload
    assert rating.export_table == "ratings" and AFC2.export_table == "responses"
    assert rating.export_values({"value": -7}, None) == {"value": -7}


@pytest.mark.parametrize("value", [101, -101, 2.5, "10", True, None])
def test_a_rating_outside_the_scale_or_not_an_integer_is_refused(value: Any) -> None:
    adapter: TypeAdapter[Any] = TypeAdapter(answer_union())
    assert adapter.validate_python({"task": "rating", "value": 100}).value == 100
    with pytest.raises(ValidationError):
        adapter.validate_python({"task": "rating", "value": value})


DEMO_TOML = (Path(app.__file__).parent / "designs" / "presets" / "demo.toml").read_text()
TASK_BLOCKS = """
[units.probe]
ids = ["demo:20", "demo:21"]

[[task_blocks]]
task = "echo"
units = "probe"
position = "start"
shuffle = false

[[task_blocks]]
task = "echo"
units = "probe"
position = "end"
title = "Last: the probes again"
"""


def test_a_design_schedules_a_new_type_in_task_blocks_without_an_edit_elsewhere(
    extra_type: None,
) -> None:
    """A type in its own folder, scheduled by a design's [[task_blocks]]: before the
    instructions, and after the last 2-AFC trial, one trial per unit of the list."""
    design = parse_design(DEMO_TOML + TASK_BLOCKS, name="demo-echo")  # no DesignInvalid
    schedule = generate_schedule(design, None, 1)
    echo = [t for t in schedule.trials if t.task == "echo"]
    n = len(schedule.trials)
    assert [(t.trial_index, t.condition, t.unit_id) for t in echo[:2]] == [
        (0, "start", "demo:20"),
        (1, "start", "demo:21"),
    ]
    assert [t.trial_index for t in echo[2:]] == [n - 2, n - 1]
    assert {t.trial_kind for t in echo} == {"task"} and not any(t.feedback for t in echo)
    first, last = schedule.blocks[0], schedule.blocks[-1]
    assert (first.kind, first.before_instructions, first.title) == ("task", True, "Next block")
    assert (last.kind, last.before_instructions, last.title) == (
        "task",
        False,
        "Last: the probes again",
    )
    assert len([t for t in schedule.trials if t.task == "afc2"]) == 13  # the demo's, unchanged


def test_task_blocks_of_unknown_or_2afc_types_or_lists_are_design_errors() -> None:
    bad = TASK_BLOCKS.replace('task = "echo"', 'task = "ratin"', 1).replace(
        'task = "echo"', 'task = "afc2"'
    )
    bad = bad.replace('units = "probe"\nposition = "end"', 'units = "probes"\nposition = "end"')
    with pytest.raises(DesignInvalid) as refused:
        parse_design(DEMO_TOML + bad, name="demo-bad")
    message = str(refused.value)
    assert "task_blocks[0].task: unknown trial type 'ratin' (did you mean 'rating'?)" in message
    assert "task_blocks[1].task: 2-AFC trials come from [[sections]] or [[blocks]]" in message
    assert "task_blocks[1].units: unknown unit list 'probes'" in message
