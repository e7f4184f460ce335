"""`xmore corpora list|show|delete`, and the store calls behind them, on both backends."""

from __future__ import annotations

from tests.cli import fails, ok, ok_json, xmore
from xmore_db.toy.formats import write_embeddings_folder


def test_list_show_delete(backend_env, tmp_path):
    ok_json("init")
    assert ok_json("corpora", "list") == []
    for name, sizes in (("a", [5, 4]), ("b", [3])):
        folder = write_embeddings_folder(tmp_path / name, sizes, coarse_dim=32, fine_dim=48,
                                         text_emb_folder=tmp_path / f"{name}-fine", seed=len(name + str(sizes)))
        ok_json("ingest", folder, "--corpus", name, "--text-emb", tmp_path / f"{name}-fine")
    listed = {c["corpus"]: c for c in ok_json("corpora", "list")}
    assert listed["a"]["units_by_status"] == {"pending": 0, "running": 0, "done": 2, "failed": 0}
    assert listed["a"]["units"] == 2
    assert (listed["a"]["rows"], listed["a"]["ingested"]) == (9, 9)
    assert listed["a"]["points"] == {"images": 9, "texts": 9} and listed["b"]["points"] == {"images": 3, "texts": 3}
    assert "a" in ok("corpora", "list").stdout

    shown = ok_json("corpora", "show", "a")
    assert [(u["unit"], u["status"], u["ingested"]) for u in shown["unit_records"]] == [
        ("0000", "done", 5), ("0001", "done", 4)]
    assert shown["units"] == 2
    assert all(u["seconds"] is not None and u["worker"] for u in shown["unit_records"])
    assert "0001" in ok("corpora", "show", "a").stdout

    refused = xmore("corpora", "delete", "a", input="n\n")
    assert refused.exit_code != 0 and ok_json("status")["collections"] == {"images": 12, "texts": 12}
    deleted = ok_json("corpora", "delete", "a", "--yes")
    assert deleted == {"corpus": "a", "points_removed": {"images": 9, "texts": 9}, "units_removed": 2}
    assert ok_json("status")["collections"] == {"images": 3, "texts": 3}
    assert [c["corpus"] for c in ok_json("corpora", "list")] == ["b"]
    assert "no corpus named 'a'" in fails("corpora", "show", "a")


def test_a_corpus_keeps_its_source_kind(backend_env, tmp_path, corpus_dir):
    ok_json("init")
    folder = write_embeddings_folder(tmp_path / "e", [3], coarse_dim=32)
    ok_json("ingest", folder, "--corpus", "x")
    assert "(embeddings source), not from a folder source" in fails("ingest", corpus_dir, "--corpus", "x")


def _tiny_wide_checkpoint(path):
    """The seeded xmore-tiny-wide weights saved as a local checkpoint file."""
    import open_clip
    from safetensors.torch import save_file

    from xmore_db.models import ensure_registered

    ensure_registered()
    model = open_clip.create_model("xmore-tiny-wide")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def test_an_ingest_that_cannot_load_its_encoders_registers_nothing(backend_env, tmp_path, monkeypatch):
    weights = _tiny_wide_checkpoint(tmp_path / "fine.safetensors")
    monkeypatch.setenv("XMORE_FINE_MODEL", f"xmore-tiny-wide:{weights}")
    ok_json("init")
    weights.unlink()  # the fine model's weights go missing after init
    folder = write_embeddings_folder(tmp_path / "e", [5, 4], coarse_dim=32)  # captions to encode: fine model
    line = fails("ingest", folder, "--corpus", "c")
    assert str(weights) in line and "XMORE_FINE_MODEL" in line
    # No phantom corpus, no point, no caption cache declared: nothing was written.
    assert ok_json("corpora", "list") == []
    status = ok_json("status")
    assert status["collections"] == {"images": 0, "texts": 0} and status["caption_cache"] is None
