"""Exception types. Every error a user can cause is a subclass of `CtxzipError`."""


class CtxzipError(Exception):
    """Base class for every error ctxzip raises on purpose."""


class InvalidInputError(CtxzipError, ValueError):
    """The input is not text, documents or messages ctxzip can compress."""


class InvalidOptionError(InvalidInputError):
    """A method was given an option it does not have."""


class InvalidBudgetError(CtxzipError, ValueError):
    """The budget is malformed: neither or both of tokens/ratio, or a non-positive value."""


class BudgetTooSmallError(CtxzipError):
    """The protected spans alone do not fit in the budget."""


class UnknownMethodError(CtxzipError, KeyError):
    """No compressor is registered under this name."""

    def __str__(self) -> str:  # KeyError would print the repr with quotes
        return str(self.args[0]) if self.args else ""


class UnknownTokenizerError(CtxzipError, ValueError):
    """The tokenizer is neither a tiktoken encoding nor a loadable Hugging Face tokenizer."""


class ModelNotAvailableError(CtxzipError):
    """A model could not be found locally and cannot be downloaded."""
