"""Classification methods, found by name: X-MoRe and its baselines, CODER, RECO.

Each method is a small object in its own module (see `base.Method`); `classify`,
`eval` and the benchmarks loop over this registry. Adding a method is one module
and one line in `_MODULES`.
"""

from __future__ import annotations

from importlib import import_module

from .base import INPUTS, Method, MethodInputs, Modalities

# Modules that define a METHODS tuple, in the order the tables list them.
_MODULES = ("xmore", "coder", "reco")


def registry() -> dict[str, Method]:
    """Every method by name, in table order."""
    out: dict[str, Method] = {}
    for module in _MODULES:
        for m in import_module(f"{__name__}.{module}").METHODS:
            out[m.name] = m
    return out


def get_method(name: str) -> Method:
    """The method called `name`; ValueError listing the known names otherwise."""
    known = registry()
    if name not in known:
        raise ValueError(f"unknown method {name!r}: choose from {', '.join(known)}")
    return known[name]


__all__ = ["INPUTS", "Method", "MethodInputs", "Modalities", "get_method", "registry"]
