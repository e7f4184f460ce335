"""What a pair keeps besides its caption, so that a hit can be found again at its source.

Each row of a source may carry, in `RowBatch.extras`, the fields stored with its
caption in the `texts` payload:

- `url`: the row's `url` column (any case) or its img2dataset json's `url`, when it has one;
- `path`: where the image is, relative to the source: a folder's or img2dataset
  files' image path, clip-retrieval's `image_path` column, `{shard}/{member}` for
  a webdataset sample;
- `metadata`: the columns chosen with `--keep-columns`, under the names given there
  (matched case-insensitively), values as the source holds them (JSON types;
  NaN becomes null). A row lacking a chosen column has no entry for it.

Unknown `--keep-columns` names are refused before anything is written (`check_keep`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from ..errors import BadInputError

URL_COLUMN = "url"


def parse_keep_columns(value: str | None) -> tuple[str, ...]:
    """`--keep-columns A,B,C` as a tuple of names (empty when not given); an empty name is an error."""
    if value is None:
        return ()
    names = [name.strip() for name in value.split(",")]
    if not all(names):
        raise BadInputError(f"--keep-columns takes comma-separated column names, got {value!r}")
    return tuple(dict.fromkeys(names))


def lookup(names: Iterable[str]) -> dict[str, str]:
    """{lower-cased name: name as spelled} (the first spelling wins)."""
    out: dict[str, str] = {}
    for name in names:
        out.setdefault(str(name).strip().lower(), str(name))
    return out


def check_keep(keep: tuple[str, ...], found: Iterable[str], where: str) -> None:
    """BadInputError naming the chosen columns that `where` does not have, and the ones it has."""
    found = list(found)
    known = lookup(found)
    unknown = [name for name in keep if name.lower() not in known]
    if unknown:
        raise BadInputError(f"--keep-columns names columns that {where} does not have: {', '.join(unknown)} "
                            f"(it has {', '.join(map(str, found)) or 'no columns'})")


def json_value(value: object) -> object:
    """A payload value: JSON types as they are, NaN and infinities as None, numpy scalars unwrapped,
    anything else as its text."""
    if hasattr(value, "item") and not isinstance(value, (list, dict, str, bytes)):
        try:
            value = value.item()
        except (TypeError, ValueError):
            pass
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (list, tuple)):
        return [json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def extras(row: Mapping[str, object], keep: tuple[str, ...], *, path: str | None = None) -> dict:
    """The payload fields of one row (`row` keyed by lower-cased column name): url, path, metadata."""
    out: dict = {}
    url = row.get(URL_COLUMN)
    if isinstance(url, str) and url.strip():
        out["url"] = url.strip()
    if path:
        out["path"] = path
    metadata = {name: json_value(row[name.lower()]) for name in keep if name.lower() in row}
    if metadata:
        out["metadata"] = metadata
    return out


def lowered(row: Mapping[str, object]) -> dict[str, object]:
    """`row` keyed by lower-cased column names."""
    return {str(k).strip().lower(): v for k, v in row.items()}
