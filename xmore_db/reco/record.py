"""A fusion file's record (in its safetensors metadata), read and checked without torch.

The record says what the layers were trained for: the classifier (spec, weights fingerprint, size),
the corpus, k, the training settings and the loss curve. A file for another classifier is refused
before anything is loaded, as the collections refuse other models.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import BadInputError, first_line

FORMAT = 1
KIND = "xmore-reco-fusion"
METADATA_KEY = "xmore_reco"


def record_path(path: Path) -> Path:
    """The human-readable copy of the record, beside the fusion file (`FILE.json`)."""
    return Path(path).with_suffix(".json")


def read_record(path: Path) -> dict:
    """The record of a fusion file; BadInputError, one line, for a missing, corrupt or foreign file."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"no fusion layer at {path}: train one with `xmore reco train --corpus NAME`")
    try:
        with safe_open(str(path), framework="numpy") as handle:
            metadata = handle.metadata() or {}
    except Exception as error:  # noqa: BLE001 - safetensors raises its own types and OSError
        raise BadInputError(f"the fusion layer {path} cannot be read ({first_line(error, 120)}): "
                            "it is not a safetensors file written by `xmore reco train`") from None
    try:
        record = json.loads(metadata[METADATA_KEY])
        if record.get("kind") != KIND or not isinstance(record.get("dim"), int):
            raise ValueError("not a fusion record")
    except (KeyError, ValueError, TypeError, AttributeError):
        raise BadInputError(f"{path} is a safetensors file but not a RECO fusion layer "
                            "(written by `xmore reco train`)") from None
    return record


def check_classifier(record: dict, path: Path, *, classifier: str, fingerprint: str, dim: int) -> None:
    """BadInputError, one line, unless the fusion layer was trained for this classifier (spec, weights, size)."""
    trained = record.get("classifier")
    if trained != classifier:
        raise BadInputError(f"the fusion layer {path} was trained for classifier {trained} but the configured "
                            f"classifier is {classifier}: train one for it (`xmore reco train --corpus NAME`) "
                            f"or configure {trained}")
    if record.get("classifier_fingerprint") != fingerprint or record.get("dim") != dim:
        raise BadInputError(f"the fusion layer {path} was trained for other weights of {classifier} "
                            f"({record.get('classifier_fingerprint')}, {record.get('dim')}-d; configured: "
                            f"{fingerprint}, {dim}-d): train one for these (`xmore reco train --corpus NAME`)")
