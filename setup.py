"""The package list, with the checkout's top-level `migrations/` shipped inside the wheel.

The migrations stay at the top level of the repository (alembic.ini points there);
a built wheel carries them as `xmore_db/migrations`, so an installed `xmore init`
finds them (xmore_db/history/engine.py looks there first). Metadata is in pyproject.toml.
"""

from setuptools import find_namespace_packages, setup

setup(
    packages=[*find_namespace_packages(include=["xmore_db", "xmore_db.*"], exclude=["*.__pycache__"]),
              "xmore_db.migrations", "xmore_db.migrations.versions"],
    package_dir={"xmore_db.migrations": "migrations"},
    package_data={
        "xmore_db.models.configs": ["*.json"],
        "xmore_db.models.checkpoints": ["*.safetensors", "*.json"],
        "xmore_db.migrations": ["script.py.mako"],
        "xmore_db.web": ["templates/*.html", "static/*.css", "static/*.js"],
    },
)
