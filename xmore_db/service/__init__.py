"""`xmore serve`: one index shared over HTTP, a thin shell like the CLI.

Request models in, the same core functions (`xmore_db.api.Index`), the same
dataclasses out as JSON. One module per job:

- settings: the service's limits and batching knobs (ServiceSettings)
- auth: who a request's API key names (team, role, key id), and the stream namespace rule
- key_routes: /v1/keys, the API keys over HTTP (admin keys only)
- corpora: /v1/corpora, the corpora with their teams, deleting one, ingest over HTTP
- ingests: HTTP ingests on their own threads, sharing the index with classification
- labelsets: /v1/labelsets, a team's named label sets, and a classify request's labels
- pairs: /v1/pairs/{pair}/image, a pair's image as a cached thumbnail (the web pages' hits; xmore_db.web)
- batching: the micro-batcher that gathers concurrent classify requests, its queue bound and timeout rule
- method_files: the CODER text banks and RECO fusion layer the service was started with
- errors: every failure mapped, in one place, to a status code and {"error": "one line"}
- metrics: Prometheus counters and histograms
- app: the FastAPI app factory and its routes

FastAPI, uvicorn and prometheus-client are the optional extra `xmore-db[serve]`;
nothing here is imported by the CLI until `xmore serve` runs.
"""

from __future__ import annotations

from .app import create_app

__all__ = ["create_app"]
