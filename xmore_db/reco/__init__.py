"""RECO's stages beyond the pure fusion math (xmore_db.methods.reco).

`inputs`: the fusion and the class prompts' retrieved neighbours for classify and eval;
`memory`: each training pair's retrievals from the store, cached; `train`: the training loop and
its checkpoints; `layers`: the fusion layers and their file (the only module that imports torch).
"""

from __future__ import annotations

from ..config import Settings


def text_side(settings: Settings) -> tuple[bool, str]:
    """Whether RECO's text side can run (the corpus' images are in the classifier's space), and why."""
    if settings.coarse == settings.classifier:
        return True, f"on: the coarse model is the classifier ({settings.classifier})"
    return False, (f"off: the corpus' image embeddings are the coarse model's ({settings.coarse}), not the "
                   f"classifier's ({settings.classifier}), so the class prompts are used as they are")
