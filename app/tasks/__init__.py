"""Trial types: each is one package `app/tasks/<name>/` exporting `TASK`, a `TrialType`
(app/tasks/base.py). They are found by scanning this package, so adding a type needs no edit
here (docs/adding-a-task.md)."""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from typing import Annotated, Any, Union

from pydantic import Field

from app.tasks.base import AnswerFields, TrialType, image_url

__all__ = [
    "DEFAULT_TASK",
    "AnswerFields",
    "TrialType",
    "answer_union",
    "image_url",
    "task_of",
    "tasks",
]

DEFAULT_TASK = "afc2"
"""The type of a trial stored before trials had types, and of a flat answer body."""


@cache
def tasks() -> dict[str, TrialType]:
    """Every trial type by name, from the subpackages of `app.tasks`."""
    found: dict[str, TrialType] = {}
    for info in pkgutil.iter_modules(__path__):
        if not info.ispkg:
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        task = getattr(module, "TASK", None)
        if not isinstance(task, TrialType):
            raise TypeError(f"app/tasks/{info.name} must export TASK, a TrialType")
        if task.name in found:
            raise TypeError(f"two trial types are named {task.name!r}")
        found[task.name] = task
    return found


def task_of(name: str | None) -> TrialType:
    """The trial type `name` (None: the default type).

    Raises:
        KeyError: no such type.
    """
    return tasks()[name or DEFAULT_TASK]


def answer_union() -> Any:
    """The type of a request body's `answer`: one of the types' answer models, told apart by
    their `task` field (so the API schema documents each)."""
    models = tuple(task.Answer for task in tasks().values())
    if len(models) == 1:
        return models[0]
    return Annotated[Union[models], Field(discriminator="task")]  # noqa: UP007
