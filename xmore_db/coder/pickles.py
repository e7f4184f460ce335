"""Reading the CODER authors' pickled phrase lists without running anything they might contain.

`pickle.load` calls whatever a pickle names (a `__reduce__` returning `os.system` runs a command). The
restricted unpickler here resolves no name at all: lists, tuples, dicts, strings and numbers (and sets,
bytes) are built by pickle's own opcodes, and any global (a function, a class) is refused before it is
looked up. What callers accept is checked after (`phrase_lists`: lists or tuples of strings).
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

from ..errors import TextBankError


class _Refused(Exception):
    def __init__(self, module: str, name: str):
        super().__init__(f"{module}.{name}")


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that admits only pickle's built-in values: no global, class or persistent id."""

    def find_class(self, module: str, name: str):
        raise _Refused(module, name)

    def persistent_load(self, pid):
        raise _Refused("persistent_id", str(pid)[:40])


def load_restricted(path: str | Path) -> object:
    """The value pickled in `path`, built by pickle's own opcodes only (lists, tuples, dicts, strings, numbers).

    TextBankError (one line) for a missing or unreadable file, or a pickle that names any global.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise TextBankError(f"{path} does not exist") from None
    except OSError as e:
        raise TextBankError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        return RestrictedUnpickler(io.BytesIO(data)).load()
    except _Refused as e:
        raise TextBankError(f"{path} refers to {e} (a global): refused, only lists, tuples, dicts and strings are "
                            "read from a pickle") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError,
            MemoryError, RecursionError) as e:
        raise TextBankError(f"{path} is not a readable pickle: {type(e).__name__}: {e}") from None


def phrase_lists(value: object, source: str, n_classes: int) -> list[list[str]]:
    """`value` as one list of strings per class (n_classes of them); TextBankError otherwise."""
    if not isinstance(value, (list, tuple)):
        raise TextBankError(f"{source} holds a {type(value).__name__}, expected a list of phrase lists per class")
    if len(value) != n_classes:
        raise TextBankError(f"{source} has {len(value)} phrase lists for {n_classes} classes")
    out = []
    for i, phrases in enumerate(value):
        if not isinstance(phrases, (list, tuple)) or not all(isinstance(p, str) for p in phrases):
            raise TextBankError(f"{source}: entry {i + 1} is not a list of strings")
        out.append([p for p in phrases])
    return out
