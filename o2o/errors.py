"""The project's error type: what a service raises when a business rule refuses a request.

One DRF exception handler (o2o.api.errors) turns it into the JSON error body;
pages turn it into a form error. Services never return error codes.
"""

from typing import Any


class ApplicationError(Exception):
    """A refusal the caller can understand and act on.

    `code` is stable and machine-readable (clients branch on it); `message` is for
    people and may be translated; `details` maps field names to their messages.
    """

    code = "invalid_request"
    status = 400

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: dict[str, Any] | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.details = details or {}

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class NotFound(ApplicationError):
    code = "not_found"
    status = 404


class Conflict(ApplicationError):
    """The request is valid but the current state refuses it (stock, a state machine)."""

    code = "conflict"
    status = 409


class PermissionDenied(ApplicationError):
    code = "permission_denied"
    status = 403
