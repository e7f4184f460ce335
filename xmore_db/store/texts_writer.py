"""The `texts` shard's writer during an embedded bulk load: a process of its own.

Qdrant Edge keeps the GIL while it writes, and building its point objects is Python
work too, so one process writes at the pace of one core however many it has. The two
collections are separate shards: during `EdgeStore.bulk_load()` this process owns
`texts` (the parent has closed it) and writes its points while the parent builds and
writes the images of the same batches, so a bulk load uses two cores.

Run by EdgeStore as `python texts_writer.py SHARD_FOLDER` (by path, so that starting
it imports no more than the engine and numpy), with the store's lock file descriptor
passed on: the store stays locked while either process lives. It reads pickled
requests from stdin and answers each on stdout:

- `("write", ids, {vector name: (rows, dims)}, payloads)`, followed by each matrix's
  float32 bytes in that order (raw: a pickled 16,384 × 768 matrix took twice as long
  through the pipe): upsert and flush, then `("ok", rows)`: the rows are durable;
- `("close",)`: close the shard, answer `("ok", 0)` and exit.

A failure answers `("error", message)` and the process goes on serving. End of input
(the parent closed the pipe, or died) closes the shard and exits: a write never
answered is not durable, which the ingest ledger already allows for.
"""

from __future__ import annotations

import array
import pickle
import sys

import numpy as np
import qdrant_edge as qe

WRITE_CHUNK = 512  # points an update() call, as store/edge.py writes them


def rows(matrix: np.ndarray) -> list[array.array]:
    """As store/edge.py's engine_rows: array('f') rows convert fastest into the engine's vectors."""
    return [array.array("f", row.tobytes()) for row in np.ascontiguousarray(matrix, dtype=np.float32)]


def write(shard: qe.EdgeShard, ids: list[str], vectors: dict[str, np.ndarray], payloads: list[dict]) -> int:
    for start in range(0, len(ids), WRITE_CHUNK):
        stop = start + WRITE_CHUNK
        named = {name: rows(matrix[start:stop]) for name, matrix in vectors.items()}
        shard.update(qe.UpdateOperation.upsert_points([
            qe.Point(pid, {name: named[name][i] for name in named}, payload)
            for i, (pid, payload) in enumerate(zip(ids[start:stop], payloads[start:stop], strict=True))]))
    shard.flush()
    return len(ids)


def read_matrices(stream, shapes: dict[str, tuple[int, int]]) -> dict[str, np.ndarray]:
    out = {}
    for name, shape in shapes.items():
        matrix = np.empty(shape, dtype=np.float32)
        view, got = memoryview(matrix).cast("B"), 0
        while got < len(view):
            read = stream.readinto(view[got:])
            if not read:
                raise EOFError
            got += read
        out[name] = matrix
    return out


def serve(folder: str) -> None:
    requests, answers = sys.stdin.buffer, sys.stdout.buffer
    shard = qe.EdgeShard.load(folder)
    try:
        while True:
            try:
                request = pickle.load(requests)
                if request[0] == "write":
                    request = (*request[:2], read_matrices(requests, request[2]), *request[3:])
            except EOFError:
                return
            try:
                if request[0] == "close":
                    shard.close()
                    shard = None
                    answer = ("ok", 0)
                else:
                    answer = ("ok", write(shard, *request[1:]))
            except Exception as error:  # noqa: BLE001 - answered, the parent raises it
                answer = ("error", " ".join(str(error).split()) or type(error).__name__)
            try:
                pickle.dump(answer, answers, protocol=pickle.HIGHEST_PROTOCOL)
                answers.flush()
            except BrokenPipeError:
                return
            if shard is None:
                return
    finally:
        if shard is not None:
            shard.close()


if __name__ == "__main__":
    serve(sys.argv[1])
