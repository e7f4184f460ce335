"""`xmore eval`: every method over the same cached retrievals, on one or more labelled test sets.

`scoring` is pure (numpy in, numbers out); `datasets` reads the test sets,
`cache` encodes and retrieves once per dataset and setup, `runner` ties them
together, `report` and `plots` write the outputs.
"""

from __future__ import annotations

from .datasets import EvalDataset, dataset_name, load_dataset
from .runner import EvalOptions, evaluate
from .scoring import DEFAULT_KS, METHODS

__all__ = ["DEFAULT_KS", "METHODS", "EvalDataset", "EvalOptions", "dataset_name", "evaluate", "load_dataset"]
