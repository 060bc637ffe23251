"""The plain data type of an answer as the services take it (no HTTP schema, no ORM row).

Imports nothing from app, so services, benchmarks and tests build it without the web layer;
`app.schemas.ResponseSubmit.to_answer` makes one from a validated request body.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class SubmittedAnswer:
    """One answer to one trial, validated; `response_uuid` is its idempotency key."""

    response_uuid: str
    trial_index: int
    task: str
    """The trial type the answer is for (`app.tasks`)."""
    fields: dict[str, Any]
    """The type's answer fields as stored in `trial_response.answer` (validated by its model)."""
    rt_ms: float
    onset_ms: float | None = None
    answer_ms: float | None = None
    frame_interval_mean_ms: float | None = None
    frame_interval_max_ms: float | None = None
    viewport_w_px: int | None = None
    viewport_h_px: int | None = None
    device_pixel_ratio: float | None = None
    display_scale: float | None = None
    focus_lost: bool = False
    fullscreen_exited: bool = False
    input_kind: str | None = None

    def row_values(self, *, via_beacon: bool) -> dict[str, Any]:
        """The `trial_response` columns that come from the answer (both answer paths)."""
        return {
            "response_uuid": self.response_uuid,
            "answer": self.fields,
            "rt_ms": self.rt_ms,
            "onset_ms": self.onset_ms,
            "answer_ms": self.answer_ms,
            "frame_interval_mean_ms": self.frame_interval_mean_ms,
            "frame_interval_max_ms": self.frame_interval_max_ms,
            "viewport_w_px": self.viewport_w_px,
            "viewport_h_px": self.viewport_h_px,
            "device_pixel_ratio": self.device_pixel_ratio,
            "display_scale": self.display_scale,
            "focus_lost": self.focus_lost,
            "fullscreen_exited": self.fullscreen_exited,
            "input_kind": self.input_kind,
            "via_beacon": via_beacon,
        }
