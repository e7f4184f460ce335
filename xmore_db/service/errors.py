"""Every failure, in one place, as a status code and {"error": "one line"}; never a traceback."""

from __future__ import annotations

import logging

from .. import errors as e
from ..config import mask_secrets
from ..errors import first_line

log = logging.getLogger("xmore.serve")


class ApiError(Exception):
    """A failure the service itself decides on: a status code, one line, and headers to send with it
    (`Retry-After` on 429 and on a timeout's 503)."""

    def __init__(self, status: int, message: str, *, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.headers = dict(headers or {})


# Most specific first: the first matching class decides the status.
STATUS: tuple[tuple[type[BaseException], int], ...] = (
    (e.UnknownStreamError, 404),
    (e.UnknownCorpusError, 404),
    (e.UnknownPairError, 404),
    (e.UnknownKeyError, 404),
    (e.StreamMethodError, 409),
    (e.BadInputError, 400),  # images, labels, stream names, text banks
    (e.StoreNotInitializedError, 503),
    (e.StoreUnreachableError, 503),
    (e.StoreLockedError, 503),
    (e.DatabaseUnreachableError, 503),
    (e.DatabaseNotMigratedError, 503),
    (e.StoreError, 503),
    (e.HistoryError, 503),
    (e.XmoreError, 500),
)


def status_and_message(exc: BaseException, secrets: list[str] | tuple[str, ...] = ()) -> tuple[int, str]:
    """The status and the one-line message for any exception, credentials masked."""
    if isinstance(exc, ApiError):
        status, message = exc.status, str(exc)
    else:
        status = next((code for kind, code in STATUS if isinstance(exc, kind)), None)
        if status is not None:
            message = str(exc)
        else:
            log.exception("unexpected failure")  # the traceback goes to the server's log, never to the client
            status, message = 500, f"unexpected {type(exc).__name__}: {first_line(exc)}"
    return status, first_line(mask_secrets(message, list(secrets))) or type(exc).__name__


def body(message: str) -> dict:
    return {"error": message}
