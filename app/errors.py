"""Domain exceptions with stable codes; no HTTP knowledge (routes map them to statuses)."""

from __future__ import annotations


class AppError(Exception):
    """Base class: `code` is a stable machine-readable string, the message is for people."""

    code = "error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(AppError):
    code = "not_found"


class Conflict(AppError):
    code = "conflict"


class OutOfOrder(Conflict):
    code = "out_of_order"


class SessionUnavailable(AppError):
    """The launched session is paused, closed or full."""

    code = "session_unavailable"


class InvalidInput(AppError):
    code = "invalid_input"


class ManifestInvalid(AppError):
    code = "manifest_invalid"


class DesignInvalid(AppError):
    code = "design_invalid"


class SchemaOutOfDate(AppError):
    code = "schema_out_of_date"


class UnsupportedMediaType(InvalidInput):
    code = "unsupported_media_type"


class NotAuthenticated(AppError):
    """No valid dashboard login."""

    code = "not_authenticated"


class Forbidden(AppError):
    """Logged in but not allowed (missing CSRF token, not an admin)."""

    code = "forbidden"


class TooManyAttempts(AppError):
    """Login throttled after repeated failures, or too many enrolments from one address."""

    code = "too_many_attempts"

    def __init__(self, detail: str, retry_after_s: int) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s


class PlatformIdMissing(InvalidInput):
    """A Prolific or MTurk study link opened without the platform's participant id."""

    code = "platform_id_missing"
