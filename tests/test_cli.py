"""The `xmore` CLI end to end, on both vector backends."""

from __future__ import annotations

import csv
import re

import pytest

from tests.cli import ok, ok_json, xmore
from xmore_db.cli.app import app
from xmore_db.history import head_revision


def test_init_ingest_retrieve_classify_show(backend_env, request, corpus_dir, query_images, labels_file):
    init = ok_json("init")
    assert init["collections_created"] is True
    # The fixture's ids are the backend names `init` reports: qdrant-edge, qdrant-server.
    assert init["vector_backend"] == request.node.callspec.params["backend_env"]
    assert init["provenance"].items() >= {"coarse_model": "xmore-tiny", "coarse_dim": 32,
                                          "fine_model": "xmore-tiny-wide", "fine_dim": 48}.items()
    assert ok_json("init")["collections_created"] is False

    first = ok_json("ingest", corpus_dir, "--corpus", "shapes")
    assert (first["ingested"], first["already_present"]) == (60, 0)
    assert first["collections"] == {"images": 60, "texts": 60}
    again = ok_json("ingest", corpus_dir, "--corpus", "shapes")
    assert (again["ingested"], again["already_present"]) == (0, 60)
    assert again["collections"] == {"images": 60, "texts": 60}

    with (corpus_dir / "captions.csv").open(newline="") as handle:
        captions = {row["caption"] for row in csv.DictReader(handle)}
    retrieved = ok_json("retrieve", query_images[0], "--coarse")
    assert len(retrieved["coarse"]) == 16 and len(retrieved["captions"]) == 4
    assert {hit["caption"] for hit in retrieved["captions"]} <= captions
    scores = [hit["score"] for hit in retrieved["captions"]]
    assert scores == sorted(scores, reverse=True)
    coarse_ids = {hit["pair_id"] for hit in retrieved["coarse"]}
    assert {hit["pair_id"] for hit in retrieved["captions"]} <= coarse_ids

    results = ok_json("classify", *query_images[:3], "--labels", labels_file, "--stream", "s1")
    labels = labels_file.read_text().split()
    assert [r["seq"] for r in results] == [1, 2, 3]
    for r in results:
        assert r["prediction"] in labels
        assert r["prediction"] == labels[max(range(len(labels)), key=lambda i: r["probabilities"][i])]
        assert sum(r["probabilities"]) == pytest.approx(1.0)
        assert len(r["p_image"]) == len(r["p_text"]) == len(labels)
        assert 0 <= r["c_image"] <= 1 and 0 <= r["c_text"] <= 1
        assert not r["no_captions"] and len(r["captions"]) == 4
    # The first query of a stream has max == min, so both adjusted confidences are 1.
    assert (results[0]["w_image"], results[0]["w_text"]) == (1.0, 1.0)

    shown = ok_json("streams", "show", "s1")
    assert shown["n_events"] == 3 and shown["stream"] == "s1"
    assert shown["image"]["min"] == pytest.approx(min(r["c_image"] for r in results))
    assert shown["text"]["max"] == pytest.approx(max(r["c_text"] for r in results))
    assert [e["prediction"] for e in shown["events"]] == [r["prediction"] for r in results]

    text = ok("classify", query_images[3], "--labels", labels_file, "--stream", "s1").stdout
    header, row = text.splitlines()
    assert header.split() == ["seq", "image", "prediction", "p", "ĉ_I", "ĉ_T", "retrieval"]
    event = ok_json("streams", "show", "s1")["events"][-1]
    seq, image, prediction, p, w_image, w_text, retrieval = re.split(r"\s{2,}", row)
    assert (seq, image, prediction) == ("4", str(query_images[3]), event["prediction"]) and event["seq"] == 4
    assert (w_image, w_text, retrieval) == (f"{event['w_image']:.2f}", f"{event['w_text']:.2f}", "4 captions")
    assert re.fullmatch(r"0\.\d{3}|1\.000", p)
    status = ok_json("status")
    assert status["collections"] == {"images": 60, "texts": 60}
    assert status["database_revision"] == head_revision() and status["streams"] == 1


def test_normalisations_are_selectable(backend_env, corpus_dir, query_images, labels_file):
    ok("init")
    ok("ingest", corpus_dir, "--corpus", "shapes")
    results = {}
    for mode in ("minmax", "l1", "none"):
        results[mode] = ok_json("classify", *query_images[:2], "--labels", labels_file,
                                "--stream", mode, "--normalize", mode)
    assert all(r["w_image"] == 1.0 and r["w_text"] == 1.0 for r in results["none"])
    second = results["l1"][1]
    first = results["l1"][0]
    assert second["w_image"] == pytest.approx(second["c_image"] / (first["c_image"] + second["c_image"]))
    assert {r["normalize"] for r in results["minmax"]} == {"minmax"}


def test_query_without_captions_is_classified_by_image_alone(backend_env, query_images, labels_file):
    ok("init")  # nothing ingested: no caption can be retrieved
    [result] = ok_json("classify", query_images[0], "--labels", labels_file, "--stream", "empty")
    assert result["no_captions"] is True and result["p_text"] is None and result["c_text"] is None
    assert result["probabilities"] == pytest.approx(result["p_image"])
    assert ok_json("streams", "show", "empty")["n_events"] == 1
    assert "image only" in ok("classify", query_images[1], "--labels", labels_file, "--stream", "empty").stdout


def test_streams_list_and_reset(backend_env, query_images, labels_file):
    ok("init")
    ok("classify", *query_images[:2], "--labels", labels_file, "--stream", "a")
    assert [s["stream"] for s in ok_json("streams", "list")] == ["a"]
    refused = xmore("streams", "reset", "a", input="n\n")
    assert refused.exit_code != 0
    assert ok_json("streams", "show", "a")["n_events"] == 2
    assert ok_json("streams", "reset", "a", "--yes")["events_removed"] == 2
    assert ok_json("streams", "list") == []
    again = ok_json("classify", query_images[0], "--labels", labels_file, "--stream", "a")
    assert again[0]["seq"] == 1


def test_config_masks_secrets(backend_env, monkeypatch):
    monkeypatch.setenv("XMORE_QDRANT_API_KEY", "s3cret")
    monkeypatch.setenv("XMORE_DATABASE_URL", "postgresql+psycopg://bob:hunter2@db.example/xmore")
    out = ok("config").stdout + ok("--device", "cuda:1", "config", "--json").stdout
    assert "s3cret" not in out and "hunter2" not in out
    values = ok_json("--device", "cuda:1", "config")
    assert values["device"] == "cuda:1" and values["qdrant_api_key"] == "****"
    assert values["classifier_model"] == "xmore-tiny"


def _walk(group, path=()):
    yield path, group
    if hasattr(group, "commands"):
        for name, command in group.commands.items():
            yield from _walk(command, path + (name,))


def test_every_command_has_help():
    import typer.main

    root = typer.main.get_command(app)
    seen = 0
    for path, command in _walk(root):
        assert (command.help or "").strip(), f"xmore {' '.join(path)} has no help"
        result = xmore(*path, "--help")
        assert result.exit_code == 0 and "Usage" in result.stdout
        seen += 1
    assert seen >= 10
