"""One exception tree for the whole gateway.

    BricksError
     ├── Invalid          400  bad input (admin validation, unparseable proxy body, bad header)
     │    ├── TooLarge    413  request body over the limit
     │    └── UnsupportedMediaType  415  an admin write that is not JSON
     ├── Unauthorized     401  missing, unknown, revoked or expired key; bad admin password
     ├── Forbidden        403  path or model not allowed, no setting for the provider
     │    └── PolicyBlocked  403  blocked by the key's PII policy (carries the entity types found)
     ├── NotFound         404  unknown id or route
     ├── Conflict         409  duplicate key secret or provider name
     ├── LimitExceeded    429  rate or spend limit reached (carries retry_after)
     ├── Unavailable      503  a backing store the request needs is down (fail-closed)
     ├── StorageRejected  500  the database refused a value (a validation gap, never an outage)
     └── UpstreamError    502/504  the provider could not be reached or timed out

Third-party exceptions are translated at the boundary (storage, upstream client) and raised
`from exc`; the HTTP layers turn these into responses in exactly one place each.

Every error also has a stable `reason` (a class default, or given where it is raised, e.g.
`Unauthorized(..., reason="revoked")`): why the gateway answered a request itself, as metrics
and request logs name it. Messages may change; reasons do not.
"""

from __future__ import annotations


class BricksError(Exception):
    status = 500
    code = "internal_error"
    reason = "internal_error"

    def __init__(self, message: str, *, fields: list[str] | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or []
        if reason:
            self.reason = reason


class Invalid(BricksError):
    status = 400
    code = "invalid_request"
    reason = "invalid_request"


class TooLarge(Invalid):
    status = 413
    code = "request_too_large"
    reason = "request_too_large"


class UnsupportedMediaType(Invalid):
    status = 415
    code = "unsupported_media_type"
    reason = "unsupported_media_type"


class Unauthorized(BricksError):
    status = 401
    code = "unauthorized"
    reason = "unauthorized"


class Forbidden(BricksError):
    status = 403
    code = "forbidden"
    reason = "forbidden"


class PolicyBlocked(Forbidden):
    code = "pii_blocked"
    reason = "pii_blocked"

    def __init__(self, findings: tuple[str, ...]) -> None:
        super().__init__(f"[BricksLLM] request blocked by the key's PII policy: found {', '.join(findings)}")
        self.findings = findings


class NotFound(BricksError):
    status = 404
    code = "not_found"
    reason = "not_found"


class Conflict(BricksError):
    status = 409
    code = "conflict"
    reason = "conflict"


class LimitExceeded(BricksError):
    status = 429

    def __init__(self, message: str, *, code: str, retry_after: int, limit: int = 0) -> None:
        super().__init__(message, reason="rate_limited" if code == "rate_limit_exceeded" else "cost_limited")
        self.code = code
        self.retry_after = retry_after
        self.limit = limit


class Unavailable(BricksError):
    status = 503
    code = "unavailable"
    reason = "unavailable"


class StorageRejected(BricksError):
    """The database refused what it was given (an encoding, a range, a constraint). Retrying the
    same data cannot help, unlike `Unavailable`: callers drop or report it, never wait on it."""

    status = 500
    code = "storage_rejected"
    reason = "storage_rejected"


class UpstreamError(BricksError):
    status = 502
    code = "upstream_error"
    reason = "upstream_error"


class UpstreamTimeout(UpstreamError):
    status = 504
    code = "upstream_timeout"
    reason = "upstream_timeout"
