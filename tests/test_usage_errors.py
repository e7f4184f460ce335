"""Usage errors are one `Error:` line with exit 2; enumerated options name their values; messages use flag names."""

from __future__ import annotations

import subprocess
import sys

from tests.cli import fails, xmore


def test_usage_errors_are_one_line_exit_2(backend_env, labels_file):
    line = fails("classify", "--labels", labels_file, code=2)
    assert line.startswith("Error: Missing argument 'images'. (see `") and line.endswith(" classify --help`)")
    line = fails("classify", "x.png", "--labels", labels_file, "--normalize", "softmax", code=2)
    assert "'softmax' is not one of minmax, l1, none" in line
    assert "No such option: --nope" in fails("status", "--nope", code=2)
    line = fails("ingest", ".", "--corpus", "c", "--format", "bogus", code=2)
    assert "'bogus' is not one of embeddings, webdataset, files, folder" in line


def test_classify_takes_labels_or_a_server_label_set(backend_env, query_images, labels_file):
    line = fails("classify", query_images[0], code=2)
    assert "give the class names with --labels FILE, or with --server a saved --label-set NAME" in line
    line = fails("classify", query_images[0], "--labels", labels_file, "--label-set", "shapes", code=2)
    assert "(one of the two)" in line
    line = fails("classify", query_images[0], "--label-set", "shapes", code=2)
    assert "label sets are kept by a server: --label-set needs --server URL" in line


def test_messages_name_flags_not_fields(backend_env, query_images, labels_file):
    line = fails("classify", query_images[0], "--labels", labels_file, "-k", "16", "-K", "4")
    assert "-k/--fine-k (16, XMORE_FINE_K) cannot exceed -K/--coarse-k (4, XMORE_COARSE_K)" in line


def test_help_has_no_type_placeholders_on_flags_and_fits_80_columns():
    text = xmore("classify", "--help").output
    assert "<bool>" not in text and "--json" in text
    assert max(len(line) for line in text.splitlines()) <= 80


def test_a_closed_pipe_ends_quietly(backend_env, tmp_path):
    # `xmore config | head -1`: the reader is gone before the first write; no message, no traceback.
    child = subprocess.Popen([sys.executable, "-m", "xmore_db", "config"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, cwd=tmp_path)
    child.stdout.close()
    stderr = child.stderr.read().decode()
    assert child.wait(timeout=60) == 141 and stderr == ""
