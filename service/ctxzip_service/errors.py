"""Errors the sidecar answers with, as OpenAI-style JSON: {"error": {"message", "type", "code"}}."""

from __future__ import annotations

from ctxzip.errors import (
    BudgetTooSmallError,
    CtxzipError,
    InvalidBudgetError,
    InvalidOptionError,
    InvalidInputError,
    ModelNotAvailableError,
    UnknownMethodError,
    UnknownTokenizerError,
)


class ServiceError(Exception):
    """An error with the HTTP status and machine-readable code it is answered with."""

    def __init__(self, status: int, code: str, message: str, kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.kind = kind

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "code": self.code}}


# Library errors a caller caused become 4xx; a missing model is the server's problem (503).
# The first matching class wins, so subclasses come before their bases.
_STATUS_OF_ERROR = (
    (UnknownMethodError, 400, "unknown_method"),
    (UnknownTokenizerError, 400, "unknown_tokenizer"),
    (InvalidBudgetError, 400, "invalid_budget"),
    (BudgetTooSmallError, 422, "budget_too_small"),
    (InvalidOptionError, 400, "invalid_option"),
    (InvalidInputError, 400, "invalid_input"),
    (ModelNotAvailableError, 503, "model_unavailable"),
)


def from_ctxzip_error(exc: CtxzipError) -> ServiceError:
    for error_type, status, code in _STATUS_OF_ERROR:
        if isinstance(exc, error_type):
            return ServiceError(status, code, str(exc), kind="server_error" if status >= 500 else "invalid_request_error")
    return ServiceError(400, "compression_error", str(exc))
