"""What the confidence history hands out and takes in: frozen records."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class ModalityStats:
    """Running statistics of one modality's confidences in a stream.

    `min`/`max` are None while `count` is 0 (text: no query had a caption yet).
    """

    count: int
    min: float | None
    max: float | None
    sum: float


@dataclass(frozen=True)
class StreamStats:
    name: str
    n_events: int
    image: ModalityStats
    text: ModalityStats
    created_at: datetime
    method: str = "xmore"


@dataclass(frozen=True)
class Decision:
    """What the caller made of a query, given the stream's statistics."""

    w_image: float
    w_text: float
    prediction: str


@dataclass(frozen=True)
class Event:
    stream: str
    seq: int
    query: str | None
    c_image: float
    c_text: float | None
    w_image: float
    w_text: float
    prediction: str
    normalize: str
    created_at: datetime
    method: str = "xmore"
    key_id: int | None = None  # the API key that wrote it; None: the CLI, the Python API or an open service
