"""CODER's text banks (arXiv 2404.17753): the JSON format, the authors' files, WordNet, encoding.

The scoring itself is a method like X-MoRe's, in `xmore_db.methods.coder`; this package turns what is
known about a label set into the texts it scores against.
"""

from __future__ import annotations

from .bank import DEFAULT_TEMPLATES, FORMAT, BankTexts, ClassTexts, TextBank, load_bank, save_bank

__all__ = ["DEFAULT_TEMPLATES", "FORMAT", "BankTexts", "ClassTexts", "TextBank", "load_bank", "save_bank"]
