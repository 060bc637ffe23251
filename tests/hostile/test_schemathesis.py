"""Fuzz the participant JSON API from its own OpenAPI schema (schemathesis, every check).

Short CI version: a few hundred generated requests in-process against `create_app(settings)`,
valid and invalid ones, half of them with the token of a seeded participant who is in the
middle of the task so the token paths get past the lookup. The long version is bench/fuzz.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from app.models import StimulusSet, TrialResponse
from tests.app.routes.test_participant_flow import answer
from tests.factories import make_experiment, make_launch

EXAMPLES_PER_OPERATION = int(os.environ.get("PSYCHVIS_FUZZ_EXAMPLES", "40"))
CHECKS_CONFIG = schemathesis.Config.from_dict(
    {
        "checks": {
            "positive_data_acceptance": {"enabled": False},
            "negative_data_rejection": {
                "expected-statuses": [400, 401, 403, 404, 405, 406, 409, 410, 413, 415, 422, 428]
            },
        }
    }
)


def seeded_token(client: TestClient, db_session: Session, demo_set: StimulusSet) -> str:
    """A participant who consented and read the instructions (answers are accepted)."""
    launched = make_launch(db_session, make_experiment(db_session, demo_set))
    db_session.commit()
    started = client.post(
        f"/s/{launched.link_code}/start", data={"PROLIFIC_PID": "fuzz"}, follow_redirects=False
    )
    token = started.headers["location"].removeprefix("/p/")
    client.post(f"/p/{token}/consent", data={"decision": "agree"})
    client.post(f"/p/{token}/instructions")
    return token


def load_schema(client: TestClient) -> schemathesis.BaseSchema:
    """The app's own schema, with checks configured for this API's documented behaviour.

    `positive_data_acceptance` is off: a schema-valid body is still refused when it is not the
    participant's current trial (409) or the token is unknown (404), by design. Invalid input
    may also be refused with 409/410 (state), 413 (too large) or 415 (content type).
    """
    return schemathesis.openapi.from_asgi("/api/openapi.json", client.app, config=CHECKS_CONFIG)


def run_operation(
    client: TestClient, operation: schemathesis.APIOperation, token: str, mode: GenerationMode
) -> None:
    """Generate cases for one operation and check every response against the schema."""

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode), real_token=st.booleans())
    def check(case: schemathesis.Case, real_token: bool) -> None:
        if real_token:
            case.path_parameters = {**(case.path_parameters or {}), "token": token}
        response = case.call()
        assert response.status_code < 500, (response.status_code, response.text[:300])
        case.validate_response(response)

    check()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_participant_api_survives_schema_fuzzing(
    client: TestClient, db_session: Session, demo_set: StimulusSet, mode: GenerationMode
) -> None:
    token = seeded_token(client, db_session, demo_set)
    schema = load_schema(client)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {
        "/api/p/{token}/next",
        "/api/p/{token}/responses",
        "/api/p/{token}/events",
        "/api/p/{token}/complete",
    }
    fuzzed = []
    for operation in operations:
        try:
            run_operation(client, operation, token, mode)
        except Unsatisfiable:
            # Negative mode cannot make a free-form string token (or a free-form event) invalid.
            assert mode is GenerationMode.NEGATIVE, operation.path
            continue
        fuzzed.append(operation.path)
    assert "/api/p/{token}/responses" in fuzzed
    # Whatever the fuzzer sent, the participant has at most one answer per trial.
    per_trial = db_session.execute(
        select(TrialResponse.trial_index, func.count()).group_by(TrialResponse.trial_index)
    ).all()
    assert all(count == 1 for _, count in per_trial)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_answers_on_autocommit_connections_survive_schema_fuzzing(
    committed_app: tuple[TestClient, str, Engine], mode: GenerationMode
) -> None:
    """The same fuzzing of `POST .../responses` in the production wiring (committed data): the
    one statement runs on its own autocommit connections, and the acknowledgement is written
    as JSON bytes past FastAPI's response model."""
    client, link, engine = committed_app
    started = client.post(
        f"/s/{link}/start", data={"PROLIFIC_PID": "fuzz-wired"}, follow_redirects=False
    )
    token = started.headers["location"].removeprefix("/p/")
    client.post(f"/p/{token}/consent", data={"decision": "agree"})
    client.post(f"/p/{token}/instructions")
    # One valid answer first, stored by the one statement: the fuzzed requests then meet a participant in
    # the middle of the task (most are refused: not the current trial, or invalid).
    first = client.post(f"/api/p/{token}/responses", json=answer(0))
    assert first.status_code == 200 and first.json()["trial_index"] == 0
    schema = load_schema(client)
    operation = schema["/api/p/{token}/responses"]["POST"]
    run_operation(client, operation, token, mode)
    with engine.connect() as conn:
        per_trial = conn.execute(
            text(
                "SELECT r.trial_index, count(*) FROM trial_response r JOIN participant p "
                "ON p.id = r.participant_id WHERE p.token = :t GROUP BY r.trial_index"
            ),
            {"t": token},
        ).all()
    assert (0, 1) in [tuple(row) for row in per_trial]
    assert all(count == 1 for _, count in per_trial)


def test_every_reference_in_the_openapi_document_resolves(client: TestClient) -> None:
    document = client.get("/api/openapi.json").json()
    refs: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                refs.append(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document)
    assert refs
    schemas = document["components"]["schemas"]
    for ref in refs:
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.removeprefix("#/components/schemas/") in schemas, ref
    events_body = document["paths"]["/api/p/{token}/events"]["post"]["requestBody"]
    item = events_body["content"]["application/json"]["schema"]["properties"]["events"]["items"]
    assert "kind" in item["properties"]
