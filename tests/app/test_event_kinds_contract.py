"""The trial page's event vocabulary (static/api.js) and the server's schema stay the same list."""

from __future__ import annotations

import re
import typing

from app.config import REPO_ROOT
from app.schemas import EventSubmit


def test_trial_page_sends_exactly_the_event_kinds_the_server_accepts() -> None:
    source = (REPO_ROOT / "static" / "api.js").read_text(encoding="utf-8")
    block = re.search(r"EVENT_KINDS = Object\.freeze\(\[(.*?)\]\)", source, re.S)
    assert block is not None, "EVENT_KINDS not found in static/api.js"
    client = set(re.findall(r'"([a-z_]+)"', block.group(1)))
    server = set(typing.get_args(EventSubmit.model_fields["kind"].annotation))
    assert client == server
