"""Exceptions raised by design loading, checking and arm assignment.

`DesignInvalid` is the application's (`app.errors`), so routes map it like any domain error.
"""

from __future__ import annotations

from app.errors import AppError, DesignInvalid

__all__ = ["ArmsFull", "DesignInvalid"]


class ArmsFull(AppError):
    """Every between-subject arm of a design has reached its quota."""

    code = "arms_full"
