"""The app's own exception types, and how long an error's text may get."""

from __future__ import annotations

# How much of an error a row keeps: OutboxEvent.last_error, FlushState.last_message.
MAX_STORED_ERROR_LENGTH = 2000
# How much an error of the HTTP client may quote (an answer's body, a connection error): it is
# logged as well as stored.
MAX_CLIENT_ERROR_LENGTH = 1000


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
