"""Load designs from presets, files or TOML text; refuse bad ones with line-level messages."""

from __future__ import annotations

import functools
import tomllib
import types
import typing
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from app.designs.checks import Issue, KeyPath, catalog_issues, format_path, static_issues, suggest
from app.designs.errors import DesignInvalid
from app.designs.model import Design
from app.designs.tomlpos import key_lines, line_of
from app.nesting import TooDeep, loads_toml
from app.schedule import Catalog

PRESETS = ("demo", "paper-exp1", "paper-exp2", "imi")
MAX_LISTED_ISSUES = 12


def preset_names() -> tuple[str, ...]:
    """Names of the shipped presets."""
    return PRESETS


def preset_text(name: str) -> str:
    """The TOML text of a shipped preset.

    Raises:
        DesignInvalid: no preset has this name.
    """
    if name not in PRESETS:
        raise DesignInvalid(
            f"no preset named {name!r}{suggest(name, PRESETS)}; presets: {', '.join(PRESETS)}"
        )
    return resources.files("app.designs").joinpath("presets", f"{name}.toml").read_text("utf-8")


def load_design(source: str, catalog: Catalog | None = None) -> Design:
    """Load a preset (by name) or a design file (by path).

    Args:
        source: `demo`, `paper-exp1`, `paper-exp2`, `imi`, or a path to a `.toml` file.
        catalog: when given, the design is also checked against this stimulus set.

    Raises:
        DesignInvalid: unknown preset, unreadable file, or an invalid design (the message
            names each offending key and its line).
    """
    if source in PRESETS:
        return parse_design(preset_text(source), source, catalog)
    path = Path(source)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        hint = suggest(source, PRESETS)
        raise DesignInvalid(
            f"{source!r} is neither a preset ({', '.join(PRESETS)}){hint} nor a readable "
            f"design file: {exc}"
        ) from None
    return parse_design(text, path.stem, catalog)


def parse_design(text: str, name: str, catalog: Catalog | None = None) -> Design:
    """Parse and validate design TOML text (the server stores this text per experiment).

    Args:
        text: the design file's content.
        name: used as the design's `name` when the text has none, and in messages.
        catalog: when given, also `check_design_against` it, with line numbers in messages.

    Raises:
        DesignInvalid: with one line per problem: `line N, key.path: what is wrong`.
    """
    design = _parse_cached(text, name)
    if catalog is not None:
        issues = catalog_issues(design, catalog)
        if issues:
            raise DesignInvalid(_format(name, issues, key_lines(text)))
    return design


@functools.lru_cache(maxsize=64)
def _parse_cached(text: str, name: str) -> Design:
    try:
        data = loads_toml(text)
    except TooDeep as exc:
        raise DesignInvalid(f"design {name!r}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise DesignInvalid(f"design {name!r} is not valid TOML: {exc}") from None
    data.setdefault("name", name)
    try:
        design = Design.model_validate(data)
    except ValidationError as exc:
        raise DesignInvalid(_format(name, _pydantic_issues(exc), key_lines(text))) from None
    issues = static_issues(design)
    if issues:
        raise DesignInvalid(_format(name, issues, key_lines(text)))
    return design


def check_design_against(design: Design, catalog: Catalog) -> None:
    """Check that a stimulus set has everything a design needs.

    Checks unit ids, enough units per role, references per side for every condition a unit is
    shown in (natural / synthetic / both for mixed), the practice batch, enough shared
    natural batches for the rotation, and the intuitiveness units' references.

    Raises:
        DesignInvalid: naming the design keys concerned (use `parse_design(text, name,
            catalog)` to get line numbers too).
    """
    issues = catalog_issues(design, catalog)
    if issues:
        raise DesignInvalid(_format(design.name, issues, None))


def _format(name: str, issues: list[Issue], positions: dict[KeyPath, int] | None) -> str:
    lines = []
    seen: set[str] = set()
    for issue in issues:
        where = format_path(issue.path) or "(top level)"
        line = line_of(positions, issue.path) if positions is not None else None
        text = f"line {line}, {where}: {issue.message}" if line else f"{where}: {issue.message}"
        if text not in seen:
            seen.add(text)
            lines.append(text)
    shown = lines[:MAX_LISTED_ISSUES]
    if len(lines) > len(shown):
        shown.append(f"... and {len(lines) - len(shown)} more")
    head = f"design {name!r} is invalid" if len(lines) > 1 else f"design {name!r} is invalid:"
    if len(lines) > 1:
        return head + ":\n  " + "\n  ".join(shown)
    return f"{head} {shown[0]}"


def _pydantic_issues(exc: ValidationError) -> list[Issue]:
    issues = []
    for error in exc.errors():
        loc = tuple(p for p in error["loc"] if isinstance(p, int | str))
        kind = error["type"]
        message = str(error["msg"]).removeprefix("Value error, ")
        if kind == "extra_forbidden":
            key = str(loc[-1])
            message = f"unknown key{suggest(key, _fields_at(loc[:-1]))}"
        elif kind == "missing":
            message = "missing required key"
        issues.append(Issue(_strip_branches(loc), message))
    return issues


def _strip_branches(loc: tuple[str | int, ...]) -> KeyPath:
    """Drop the union-branch names pydantic puts into error locations (`int`, `str`, ...)."""
    return tuple(p for p in loc if not (isinstance(p, str) and ("[" in p or p in ("int", "str"))))


def _fields_at(loc: tuple[str | int, ...]) -> list[str]:
    """Field names of the model found at `loc` (for "did you mean" hints)."""
    current: Any = Design
    for part in loc:
        current = _step(current, part)
        if current is None:
            return []
    model = _model_of(current)
    return list(model.model_fields) if model is not None else []


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _model_of(arg)
            if found is not None:
                return found
    return None


def _step(annotation: Any, part: str | int) -> Any:
    model = _model_of(annotation)
    if model is not None and isinstance(part, str) and part in model.model_fields:
        return model.model_fields[part].annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if typing.get_origin(arg) in (tuple, dict):
                return _step(arg, part)
    if origin is tuple:
        return typing.get_args(annotation)[0]
    if origin is dict:
        return typing.get_args(annotation)[1]
    return None
