"""The errors mlfn's runtime raises on purpose, each carrying what a person needs to fix the cause."""

from __future__ import annotations


class MlfnError(Exception):
    """Base of mlfn's own errors: their text is meant for a person, never a stack trace."""


class SpecError(MlfnError):
    """A model directory is invalid: names the file, the field, what was expected and what was found."""

    def __init__(self, file: str, field: str, expected: str, found: str) -> None:
        self.file, self.field, self.expected, self.found = file, field, expected, found
        where = file if field == "-" else f"{file}: {field}"
        super().__init__(f"{where}: expected {expected}, got {found}")


class RequestError(MlfnError):
    """A request the model cannot serve as sent; becomes an HTTP 4xx with a JSON body."""

    def __init__(self, message: str, status: int = 400, **details: object) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.details = details

    def to_json(self) -> dict[str, object]:
        return {"error": self.message, **self.details}


class ModelError(MlfnError):
    """The model (or its hooks) failed on a request it accepted; becomes an HTTP 500 with a request id."""

    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_json(self) -> dict[str, object]:
        return {"error": self.message}
