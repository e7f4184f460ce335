"""The web pages of `xmore serve`: search the index, classify and explain, watch streams, see corpora.

The pages are one more client of the /v1 API, not a second back end: the
server renders an HTML shell (Jinja2 templates), and a little vanilla
JavaScript (static/, vendored, no build step, nothing from a CDN) fetches
every datum from the same routes the Python client uses, with the API key the
user enters once (kept in the tab's sessionStorage, sent as
`Authorization: Bearer KEY`). The pages add no permission logic: what the API
refuses, they show as its one-line error.

- pages: the router: the pages, and the stylesheet and scripts under /static
- templates/: one base layout and a template per page
- static/: xmore.css, xmore.js (key, API calls, error line, thumbnails), a script per page

Jinja2 is part of the `serve` extra; nothing here is imported until `xmore serve` builds its app.
"""

from __future__ import annotations

try:
    import jinja2  # noqa: F401
except ImportError:  # an install from before the pages, with the `serve` extra of its day
    from ..errors import ConfigError

    raise ConfigError("`xmore serve`'s web pages need Jinja2: pip install 'xmore-db[serve]'") from None

from .pages import router  # noqa: E402

__all__ = ["router"]
