"""The error hierarchy: every error a client sees becomes problem+json with a stable code."""

from __future__ import annotations

import uuid
from typing import Any, ClassVar


class ExportdError(Exception):
    """Root of exportd's errors; `status`, `code` and `title` render as RFC 9457 problem+json."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal"
    title: ClassVar[str] = "Internal error"

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra


class ConfigError(ExportdError):
    code, title = "config_invalid", "Invalid configuration"


class CatalogError(ConfigError):
    code, title = "catalog_invalid", "Invalid export catalog"


class Unauthorized(ExportdError):
    status, code, title = 401, "unauthorized", "Missing or invalid credentials"


class BadRequest(ExportdError):
    status, code, title = 400, "bad_request", "Bad request"


class ClientDisconnected(BadRequest):
    """Nobody reads this answer; it keeps a hang-up from looking like an outage."""

    code, title = "client_disconnected", "Client closed the request"


class RequestTimeout(ExportdError):
    status, code, title = 408, "request_timeout", "Request body did not arrive in time"


class MalformedJson(BadRequest):
    code, title = "malformed_json", "Request body is not valid JSON"


class InvalidRequest(ExportdError):
    status, code, title = 422, "invalid_request", "Request is invalid"


class UnknownExport(InvalidRequest):
    code, title = "unknown_export", "No such export in the catalog"


class UnknownFormat(InvalidRequest):
    code, title = "unknown_format", "Unsupported format"


class InvalidParams(InvalidRequest):
    code, title = "invalid_params", "Export parameters are invalid"


class InvalidCursor(BadRequest):
    code, title = "invalid_cursor", "Invalid page cursor"


class PayloadTooLarge(ExportdError):
    status, code, title = 413, "payload_too_large", "Request body is too large"


class UnsupportedMediaType(ExportdError):
    status, code, title = 415, "unsupported_media_type", "Request body must be application/json"


class ExportNotFound(ExportdError):
    status, code, title = 404, "export_not_found", "Export not found"


class NotFound(ExportdError):
    status, code, title = 404, "not_found", "Not found"


class MethodNotAllowed(ExportdError):
    status, code, title = 405, "method_not_allowed", "Method not allowed"


class ExportFinished(ExportdError):
    status, code, title = 409, "export_finished", "Export already finished"


class ExportNotFinished(ExportdError):
    status, code, title = 409, "export_not_finished", "Export has no file yet"


class ExportHasNoFile(ExportdError):
    status, code, title = 409, "export_has_no_file", "Export ended without a file"


class ExportExpired(ExportdError):
    status, code, title = 410, "export_expired", "Export's file has expired"


class LinkNotFound(ExportdError):
    status, code, title = 404, "link_not_found", "No such download link"


class LinkRevoked(ExportdError):
    status, code, title = 410, "link_revoked", "Download link was revoked"


class Forbidden(ExportdError):
    status, code, title = 403, "insufficient_scope", "Token lacks the scope this needs"


class WebhookNotFound(ExportdError):
    status, code, title = 404, "webhook_not_found", "Webhook not found"


class TooManyWebhooks(ExportdError):
    status, code, title = 409, "too_many_webhooks", "Too many webhooks for this tenant"


class IdempotencyKeyReused(InvalidRequest):
    code, title = "idempotency_key_reused", "Idempotency-Key was used for a different request"


class TooManyQueued(ExportdError):
    status, code, title = 429, "too_many_queued", "Too many queued exports"


class TooManyWaiters(ExportdError):
    status, code, title = 429, "too_many_waiters", "Too many long-polls waiting"


class ServiceUnavailable(ExportdError):
    status, code, title = 503, "unavailable", "Service temporarily unavailable"


class NotReady(ExportdError):
    status, code, title = 503, "not_ready", "A dependency is not answering"


class DependencyRefused(Exception):
    """A dependency answered and refused us: wrong credentials, a missing bucket. Retrying
    soon will not help (and may lock the account); an operator must fix the setting.
    `reason` is safe to show; `detail` is for the log."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class StartupError(Exception):
    """The process cannot start; the message is the one line the operator reads."""


def new_error_id() -> str:
    """A failure's correlation id: shown to the export's owner, its details logged under it."""
    return uuid.uuid4().hex[:16]


class LeaseLost(Exception):
    """A fenced write matched no row: another worker owns the job now, so this one must stop."""


class JobFailure(Exception):
    """A job failed. `code` and `message` are the export owner's to read (a stable code and a
    human sentence, no infrastructure); `detail` is for the operator's log only;
    `retryable` says whether another attempt can succeed."""

    def __init__(self, code: str, message: str, *, retryable: bool, detail: str = "") -> None:
        super().__init__(detail or message)
        self.code = code
        self.message = message
        self.retryable = retryable
        self.detail = detail or message
