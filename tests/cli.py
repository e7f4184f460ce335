"""Driving the real `xmore` CLI in-process (typer's CliRunner), the one helper every CLI test uses."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from xmore_db.cli.app import app

runner = CliRunner()


def xmore(*args, input: str | None = None):
    """Run `xmore ARGS…`; returns the result whatever the exit code."""
    return runner.invoke(app, [str(a) for a in args], input=input, catch_exceptions=False)


def ok(*args, input: str | None = None):
    """Run `xmore ARGS…` and require exit 0."""
    result = xmore(*args, input=input)
    assert result.exit_code == 0, result.output + result.stderr
    return result


def ok_json(*args):
    """Run `xmore ARGS… --json`, require exit 0, and parse stdout as one JSON document."""
    return json.loads(ok(*args, "--json").stdout)


def fails(*args, code: int = 1) -> str:
    """Run `xmore ARGS…`, require exit `code` and exactly one stderr line starting `Error:`; returns it."""
    result = xmore(*args)
    assert result.exit_code == code, result.output + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.stderr
    return lines[0]
