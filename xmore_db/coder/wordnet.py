"""Synonyms of class names from a local WordNet, through nltk, where the user has both.

Nothing is downloaded: nltk reads either its data path (NLTK_DATA, ~/nltk_data, …) or a WordNet 3.0
database folder given explicitly (data.noun, index.noun, lexnames, …; Debian's `wordnet-base` package
installs one). Without nltk or a WordNet, a one-line ConfigError says what to install.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import ConfigError

MISSING_NLTK = ("WordNet synonyms need the nltk package (pip install nltk) and a local WordNet "
                "(nltk's data path, or --wordnet-dir DIR: a WordNet 3.0 database folder such as Debian's "
                "wordnet-base installs); nothing is downloaded")


def open_wordnet(folder: Path | None = None) -> Any:
    """An nltk WordNet reader over `folder`, else over nltk's data path; ConfigError when there is none."""
    try:
        import nltk  # noqa: F401
    except ImportError:
        raise ConfigError(MISSING_NLTK) from None
    try:
        if folder is not None:
            from nltk.corpus.reader.wordnet import WordNetCorpusReader

            if not Path(folder).is_dir():
                raise ConfigError(f"--wordnet-dir {folder} is not a folder")
            return WordNetCorpusReader(str(folder), None)
        from nltk.corpus import wordnet

        wordnet.ensure_loaded()
        return wordnet
    except (LookupError, OSError) as e:
        where = f"in {folder}" if folder is not None else "in nltk's data path (NLTK_DATA)"
        raise ConfigError(f"no WordNet {where} ({type(e).__name__}); {MISSING_NLTK}") from None


def wordnet_synonyms(names: Iterable[str], reader: Any) -> dict[str, list[str]]:
    """Per class name, the other lemmas of its first (most frequent) noun sense, "_" read as a space.

    Only the first sense: "star" also names a celebrity, whose lemmas would pull the class elsewhere.
    """
    out = {}
    for name in names:
        senses = reader.synsets(name.replace(" ", "_"), pos="n")
        lemmas = [lemma.replace("_", " ") for lemma in (senses[0].lemma_names() if senses else [])]
        out[name] = list(dict.fromkeys(x for x in lemmas if x.casefold() != name.casefold()))
    return out
