"""Every error a user can cause or meet.

Core modules raise these; the CLI maps them to one line on stderr and exit 1.
The message must name the problem and, where there is one, the fix.
"""

from __future__ import annotations


class XmoreError(Exception):
    """Base class: an expected failure with a message meant for the user."""


class ConfigError(XmoreError):
    """A setting has a value that cannot work."""


class BadInputError(XmoreError):
    """A file or argument given by the user cannot be used."""


class ImageError(BadInputError):
    """An image cannot be read or decoded."""


class CaptionsError(BadInputError):
    """A captions file is missing or malformed."""


class LabelsError(BadInputError):
    """A labels file is empty, malformed or has duplicates."""


class TextBankError(BadInputError):
    """A CODER text bank (or the authors' knowledge files it is imported from) is missing or malformed."""


class UnknownModelError(XmoreError):
    """An architecture or pretrained tag that open_clip does not know."""


class WeightsMissingError(XmoreError):
    """Weights that are neither cached nor downloadable here."""


class StoreError(XmoreError):
    """The vector store failed."""


class StoreUnreachableError(StoreError):
    """A Qdrant server does not answer."""


class StoreLockedError(StoreError):
    """The embedded store is open in another process."""


class StoreMismatchError(StoreError):
    """Existing collections were built with other models or vector sizes."""


class StoreNotInitializedError(StoreError):
    """The collections do not exist yet (run `xmore init`)."""


class StoreReadOnlyError(StoreError):
    """A Qdrant server refused a write: the configured API key is its read-only key."""


class HistoryError(XmoreError):
    """The confidence-history database failed."""


class DatabaseUnreachableError(HistoryError):
    """The database cannot be connected to."""


class DatabaseNotMigratedError(HistoryError):
    """The database schema is missing or behind (run `xmore init`)."""


class UnknownStreamError(HistoryError):
    """A stream name that has no history."""


class StreamMethodError(BadInputError):
    """A stream's confidence history belongs to another classification method."""


class StreamNameError(BadInputError):
    """A stream name outside the allowed ones (`config.check_stream_name`)."""


class UnitReadError(BadInputError):
    """One work unit of a corpus (an npy partition, a tar shard) cannot be read: that unit fails alone."""


class IngestLockedError(HistoryError):
    """Another ingest holds the single-writer lock of a SQLite database."""


class UnknownCorpusError(HistoryError):
    """A corpus name that has no ingest records."""


class UnknownKeyError(HistoryError):
    """An API key id that the key store does not hold."""


class UnknownPairError(BadInputError):
    """A pair id or CORPUS:KEY that neither collection holds."""


class ServerError(XmoreError):
    """`xmore serve` refused or failed a request (`xmore_db.client`); its one-line message, and `status`.

    `status` is the HTTP status code, or None when no answer came.
    """

    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message)
        self.status = status


class ServerAuthError(ServerError):
    """The server wants another API key: none or an unknown one (401), or one without the right (403)."""


class ServerUnreachableError(ServerError):
    """No answer from the server: refused, unresolvable, or too slow."""


def first_line(error: BaseException | str, limit: int = 300) -> str:
    """The first non-empty line of a message, whitespace collapsed and cut at `limit`; "" for an empty one.

    Engines and drivers put their detail on later lines; a user's error stays one line.
    """
    text = next((" ".join(line.split()) for line in str(error).splitlines() if line.strip()), "")
    return text if len(text) <= limit else text[: limit - 1] + "…"
