"""The app's own exception types."""

from __future__ import annotations


class TracifyError(Exception):
    """Base class for every error django-tracify raises."""


class TracifyConnectionError(TracifyError):
    """A request to Tracify got no answer (timeout, refused or reset connection)."""


class TracifyValidationError(TracifyError, ValueError):
    """An event could not be built: `field` names the input, `problem` says what is wrong."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")
