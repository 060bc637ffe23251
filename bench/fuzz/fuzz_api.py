"""Long schema fuzzing of a running server (the CI version is tests/hostile/test_schemathesis.py).

Loads the server's own OpenAPI schema, enrols real participants over HTTP (one that is mid-task,
one that has finished), and lets schemathesis generate valid and invalid requests for every
operation, with the real tokens swapped in for a part of them. Every response is checked with
all of schemathesis' checks except `positive_data_acceptance` (a schema-valid answer is still
refused when it is not the current trial: 409 by design). Any 5xx or schema mismatch fails.

Run: `.venv/bin/python -m bench.fuzz.fuzz_api --url http://127.0.0.1:8000 --link bench-lossless
--examples 2000 --out bench/out/fuzz.json` (the link from `bench.load.setup_bench` or `psychvis demo`).
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import httpx
import schemathesis
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

cli = typer.Typer(add_completion=False)
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
"""All checks; refusals by state (409/410), size (413) and content type (415) count as rejections."""


def enrol(client: httpx.Client, link: str, finish: bool) -> str:
    """A participant through consent and instructions (and every trial when `finish`)."""
    pid = f"fuzz-{uuid.uuid4().hex[:10]}"
    token = client.post(f"/s/{link}/start", data={"PROLIFIC_PID": pid}).headers["location"][3:]
    client.post(f"/p/{token}/consent", data={"decision": "agree"})
    client.post(f"/p/{token}/instructions")
    client.get(f"/p/{token}")  # the task page: answers are taken once it was served
    if finish:
        step = client.get(f"/api/p/{token}/next").json()
        while step["step"] == "trial":
            body = {
                "response_uuid": str(uuid.uuid4()),
                "trial_index": step["trial"]["trial_index"],
                "response": "upper",
                "confidence": 2,
                "rt_ms": 900.0,
                "onset_ms": 1000.0,
                "answer_ms": 1900.0,
            }
            step = client.post(f"/api/p/{token}/responses", json=body).json()["next"]
        client.post(f"/api/p/{token}/complete")
    return token


def fuzz_operation(
    operation: schemathesis.APIOperation,
    mode: GenerationMode,
    tokens: list[str],
    url: str,
    examples: int,
    seed: int,
    statuses: Counter[str],
    failures: list[str],
) -> None:
    """Generate up to `examples` cases; count statuses, record failures (first 50)."""
    label = f"{operation.method.upper()} {operation.path}"

    @hypothesis_seed(seed)
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        case=operation.as_strategy(generation_mode=mode),
        which=st.integers(min_value=0, max_value=3),
    )
    def check(case: schemathesis.Case, which: int) -> None:
        if which < len(tokens):
            case.path_parameters = {**(case.path_parameters or {}), "token": tokens[which]}
        response = case.call(base_url=url)
        statuses[f"{label} {response.status_code}"] += 1
        try:
            case.validate_response(response)
            assert response.status_code < 500, response.status_code
        except Exception as exc:
            if len(failures) < 50:
                failures.append(f"{label} {mode.value}: {exc}")
            raise

    try:
        check()
    except Unsatisfiable:
        return  # nothing to make invalid (a free-form token)
    except Exception:  # noqa: S110 - recorded in `failures`; go on with the next operation
        pass


@cli.command()
def main(
    url: Annotated[str, typer.Option()] = "http://127.0.0.1:8000",
    link: Annotated[str, typer.Option()] = "bench-lossless",
    examples: Annotated[int, typer.Option(help="Examples per operation and mode.")] = 1000,
    seed: Annotated[int, typer.Option()] = 1,
    out: Annotated[Path | None, typer.Option()] = None,
) -> None:
    """Fuzz every operation in both modes; exit 1 on any failure."""
    with httpx.Client(base_url=url, timeout=30) as client:
        tokens = [enrol(client, link, finish=False), enrol(client, link, finish=True)]
    schema = schemathesis.openapi.from_url(f"{url}/api/openapi.json", config=CHECKS_CONFIG)
    statuses: Counter[str] = Counter()
    failures: list[str] = []
    started = time.monotonic()
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            fuzz_operation(operation, mode, tokens, url, examples, seed, statuses, failures)
    summary: dict[str, Any] = {
        "url": url,
        "examples_per_operation_and_mode": examples,
        "seconds": round(time.monotonic() - started, 1),
        "requests": sum(statuses.values()),
        "by_status": dict(sorted(statuses.items())),
        "failures": failures,
    }
    typer.echo(json.dumps(summary, indent=1))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(summary, indent=1), encoding="utf-8")
    if failures:
        raise typer.Exit(1)


if __name__ == "__main__":
    cli()
