"""xmore-db: X-MoRe retrieval-augmented CLIP classification over Qdrant."""

__version__ = "0.1.0"
