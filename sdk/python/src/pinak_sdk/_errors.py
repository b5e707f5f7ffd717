"""Exceptions raised by the clients. Every error is a `PinakError`."""

from __future__ import annotations

from typing import Any

__all__ = [
    "PinakError",
    "BadRequestError",
    "AuthError",
    "NotFoundError",
    "ConflictError",
    "ValidationError",
    "UnavailableError",
    "ConnectionFailed",
    "error_for_status",
]


class PinakError(Exception):
    """An error answer of the API (`status`, `detail`) or a failure to reach it (`status` None).

    `detail` is the body's `detail` (usually a string; a list for 422, an object for a few
    routes), or the whole body when it has no `detail`. `request_id` is the response's
    `X-Request-ID`, to quote when reporting a problem.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        detail: Any = None,
        method: str | None = None,
        url: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail
        self.method = method
        self.url = url
        self.request_id = request_id


class BadRequestError(PinakError):
    """400: a path parameter or body the route refuses (e.g. `Unsupported layer`)."""


class AuthError(PinakError):
    """401 (no valid token) or 403 (missing scope or role, blocked client, identity mismatch)."""


class NotFoundError(PinakError):
    """404: no such record in the caller's tenant and project."""


class ConflictError(PinakError):
    """409: the audit chain does not verify (`detail` holds the report)."""


class ValidationError(PinakError):
    """422: the request did not validate. `errors` is the list of `{loc, msg, type}`."""

    @property
    def errors(self) -> list[dict[str, Any]]:
        if isinstance(self.detail, list):
            return [e for e in self.detail if isinstance(e, dict)]
        return []


class UnavailableError(PinakError):
    """503 (not ready, timed out, database or embedding backend down), after the retries."""


class ConnectionFailed(PinakError):
    """The API could not be reached (connection refused, DNS, timeout), after the retries."""


_BY_STATUS: dict[int, type[PinakError]] = {
    400: BadRequestError,
    401: AuthError,
    403: AuthError,
    404: NotFoundError,
    409: ConflictError,
    422: ValidationError,
    503: UnavailableError,
}


def error_for_status(
    status: int, body: Any, *, method: str, url: str, request_id: str | None
) -> PinakError:
    detail = body.get("detail", body) if isinstance(body, dict) else body
    cls = _BY_STATUS.get(status, PinakError)
    if isinstance(detail, str):
        text = detail
    elif isinstance(detail, list) and cls is ValidationError:
        text = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', []))}: {e.get('msg', '')}"
            for e in detail
            if isinstance(e, dict)
        )
    else:
        text = repr(detail)
    return cls(
        f"{method} {url} -> {status}: {text}",
        status=status,
        detail=detail,
        method=method,
        url=url,
        request_id=request_id,
    )
