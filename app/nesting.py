"""Nesting limits for JSON and TOML from uploads: a deeply nested document exhausts the parsers'
recursion (a 500) or makes validation slow; it is refused as input instead."""

from __future__ import annotations

import json
import tomllib
from typing import Any

MAX_DEPTH = 32
"""Deeper than any manifest, index.json or design needs (they nest 5 to 6 levels)."""


class TooDeep(ValueError):
    """The document nests deeper than MAX_DEPTH (or than the parser can)."""


def _depth(value: Any) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, level)
            if level > MAX_DEPTH:
                break
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, level + 1) for child in children)
    return deepest


def _checked(value: Any) -> Any:
    if _depth(value) > MAX_DEPTH:
        raise TooDeep(f"nested deeper than {MAX_DEPTH} levels")
    return value


def loads_json(text: str) -> Any:
    """`json.loads` that raises TooDeep (a ValueError) for documents nested too deeply.

    Raises:
        TooDeep: nested deeper than MAX_DEPTH.
        json.JSONDecodeError: not JSON.
    """
    try:
        return _checked(json.loads(text))
    except RecursionError:
        raise TooDeep(f"nested deeper than {MAX_DEPTH} levels") from None


def loads_toml(text: str) -> dict[str, Any]:
    """`tomllib.loads` that raises TooDeep for documents nested too deeply.

    Raises:
        TooDeep: nested deeper than MAX_DEPTH.
        tomllib.TOMLDecodeError: not TOML.
    """
    try:
        data: dict[str, Any] = _checked(tomllib.loads(text))
    except RecursionError:
        raise TooDeep(f"nested deeper than {MAX_DEPTH} levels") from None
    return data
