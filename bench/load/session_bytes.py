"""Bytes a participant downloads for one 45-trial session (9+9 references), per image encoding.

Walks one participant per experiment (`bench-lossless`, `bench-lossy`, `bench-png` from
`bench.load.setup_bench`) through the real server over HTTP: pages, the static assets the task
page links, every JSON call, and every distinct image the trials show (fetched once, as the
browser's cache does: image URLs are content hashes). Counts body bytes as sent (no gzip: the
app does not compress; nginx in docs/deploy.md compresses JSON/JS/CSS but not images).

Run against a running server: `.venv/bin/python -m bench.load.session_bytes --url http://127.0.0.1:8000
--out bench/out/session_bytes.json`.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from bench.load.loadgen import answer_body

cli = typer.Typer(add_completion=False)
ASSET = re.compile(r'(?:href|src)="(/static/[^"]+)"')
IMPORT_MAP = re.compile(r'"(/static/[^"]+\?v=[^"]+)"')


def walk(client: httpx.Client, link: str) -> dict[str, Any]:
    """One participant through the whole session; returns byte counts by kind."""
    import random

    rng = random.Random(0)
    counts = {"pages": 0, "static": 0, "api_json": 0, "images": 0}
    images: set[str] = set()
    pid = f"bytes-{uuid.uuid4().hex[:8]}"
    counts["pages"] += len(client.get(f"/s/{link}", params={"PROLIFIC_PID": pid}).content)
    token = client.post(f"/s/{link}/start", data={"PROLIFIC_PID": pid}).headers["location"][3:]
    counts["pages"] += len(client.get(f"/p/{token}").content)
    client.post(f"/p/{token}/consent", data={"decision": "agree"})
    counts["pages"] += len(client.get(f"/p/{token}").content)
    client.post(f"/p/{token}/instructions")
    page = client.get(f"/p/{token}").text
    counts["pages"] += len(page.encode())
    assets = set(ASSET.findall(page)) | set(IMPORT_MAP.findall(page))
    for asset in sorted(assets):
        counts["static"] += len(client.get(asset.replace("&amp;", "&")).content)
    response = client.get(f"/api/p/{token}/next")
    counts["api_json"] += len(response.content)
    step = response.json()
    n_trials = step["n_trials"]
    while step["step"] == "trial":
        trial = step["trial"]
        shown = [*trial["references"]["min"], *trial["references"]["max"]]
        shown += [trial["queries"]["upper"], trial["queries"]["lower"]]
        images.update(shown)
        images.update(step.get("preload", []))
        body = answer_body(trial["trial_index"], rng)
        response = client.post(f"/api/p/{token}/responses", json=body)
        counts["api_json"] += len(response.content) + len(json.dumps(body))
        step = response.json()["next"]
    counts["api_json"] += len(client.post(f"/api/p/{token}/complete").content)
    for url in sorted(images):
        counts["images"] += len(client.get(url).content)
    return {
        "n_trials": n_trials,
        "distinct_images": len(images),
        "bytes": counts,
        "total_bytes": sum(counts.values()),
    }


@cli.command()
def main(
    url: Annotated[str, typer.Option()] = "http://127.0.0.1:8000",
    out: Annotated[Path | None, typer.Option()] = None,
) -> None:
    """Measure each encoding and print a table (MB = 10^6 bytes)."""
    results: dict[str, Any] = {}
    with httpx.Client(base_url=url, timeout=30) as client:
        for encoding in ("png", "lossless", "lossy"):
            results[encoding] = walk(client, f"bench-{encoding}")
    png = results["png"]
    for encoding, r in results.items():
        r["images_vs_png"] = round(r["bytes"]["images"] / png["bytes"]["images"], 3)
        r["total_vs_png"] = round(r["total_bytes"] / png["total_bytes"], 3)
        typer.echo(
            f"{encoding:<9} trials {r['n_trials']}  images {r['distinct_images']}  "
            f"image MB {r['bytes']['images'] / 1e6:7.2f}  total MB {r['total_bytes'] / 1e6:7.2f}  "
            f"images/PNG {r['images_vs_png']:.3f}  total/PNG {r['total_vs_png']:.3f}"
        )
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=1), encoding="utf-8")


if __name__ == "__main__":
    cli()
