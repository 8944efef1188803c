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


def from_ctxzip_error(exc: CtxzipError) -> ServiceError:
    """Library errors a caller caused become 4xx; a missing model is the server's problem (503)."""
    if isinstance(exc, UnknownMethodError):
        return ServiceError(400, "unknown_method", str(exc))
    if isinstance(exc, UnknownTokenizerError):
        return ServiceError(400, "unknown_tokenizer", str(exc))
    if isinstance(exc, InvalidBudgetError):
        return ServiceError(400, "invalid_budget", str(exc))
    if isinstance(exc, BudgetTooSmallError):
        return ServiceError(422, "budget_too_small", str(exc))
    if isinstance(exc, InvalidOptionError):
        return ServiceError(400, "invalid_option", str(exc))
    if isinstance(exc, InvalidInputError):
        return ServiceError(400, "invalid_input", str(exc))
    if isinstance(exc, ModelNotAvailableError):
        return ServiceError(503, "model_unavailable", str(exc), kind="server_error")
    return ServiceError(400, "compression_error", str(exc))
