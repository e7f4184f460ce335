"""One name per concept in `--json` (README, *JSON vocabulary*)."""

from __future__ import annotations

from tests.cli import ok_json


def test_one_name_per_concept(backend_env, corpus_dir, query_images, labels_file):
    init = ok_json("init")
    report = ok_json("ingest", corpus_dir, "--corpus", "shapes")
    classified = ok_json("classify", *query_images[:2], "--labels", labels_file, "--stream", "vocab")

    # The stream's name is `stream` in classify, streams list, show and reset.
    [listed] = ok_json("streams", "list")
    shown = ok_json("streams", "show", "vocab")
    assert {r["stream"] for r in classified} == {listed["stream"]} == {shown["stream"]} == {"vocab"}
    assert "name" not in listed and "name" not in shown
    assert shown["n_events"] == listed["n_events"] == 2 and [e["stream"] for e in shown["events"]] == ["vocab"] * 2

    # `units` is a count everywhere; the per-status counts are `units_by_status`, the records `unit_records`.
    [corpus] = ok_json("corpora", "list")
    detail = ok_json("corpora", "show", "shapes")
    assert isinstance(report["units"], int) and report["units"] == corpus["units"] == detail["units"] >= 1
    assert sum(corpus["units_by_status"].values()) == corpus["units"] == len(detail["unit_records"])

    # The models the collections were built with: `provenance` in init and status.
    assert ok_json("status")["provenance"] == init["provenance"]
    assert ok_json("streams", "reset", "vocab", "--yes")["stream"] == "vocab"
    assert ok_json("streams", "list") == []
