"""One `xmore serve` against N separate `xmore classify` processes: throughput, latency, memory.

    .venv/bin/python benchmarks/serve.py                               # 1, 4, 16, 64 clients
    .venv/bin/python benchmarks/serve.py --clients 1,16 --requests 8 --repeats 2

The work: N clients, each classifying `--requests` images of the toy shape task into a
stream of its own, on the demo's toy models (`xmore-toy-strong:toy` coarse and fine,
`xmore-toy-weak:toy` classifier) over a small embedded store built once in `--workdir`
and reused (`make demo` builds the same kind of store, larger).

- serve: one `xmore serve --open` process; each client is a thread sending its images one
  per request, waiting for each answer before the next. A request's latency is one image's.
- processes: each client is one `xmore classify` process given its images at once (the best
  case for processes: one model load per client, its images batched inside it). Its latency
  is the process's wall time, start to exit, which is when its client has its answers.
  The embedded store (Qdrant Edge) admits one process, and there is no Qdrant server here,
  so each process gets its own copy of the store directory; all of them, and the service,
  share one PostgreSQL history.

Settings alternate (serve, processes, serve, processes, ...) `--repeats` times per client
count; the table gives each run, and the summary the median ratio of the pairs. Memory is
sampled every 50 ms from /proc/PID/status while a run lasts: the peak of the sum, over the
processes doing the work (the service alone; all classify processes), of RssAnon (what the
processes hold) and RssFile (mapped files resident: libraries and the store's segments,
counted once per process although the kernel shares them). The load generator's own threads
are not counted. Process runs beyond what the free memory holds are skipped, saying so.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
MODELS = {"XMORE_COARSE_MODEL": "xmore-toy-strong:toy", "XMORE_FINE_MODEL": "xmore-toy-strong:toy",
          "XMORE_CLASSIFIER_MODEL": "xmore-toy-weak:toy"}
LABELS = ["circle", "square", "triangle", "star", "cross"]


# ---- memory ---------------------------------------------------------------------------------------------------

def rss_kib(pid: int) -> tuple[int, int]:
    """(RssAnon, RssFile) of a process in KiB; zeros once it has exited."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0, 0
    fields = dict(re.findall(r"^(RssAnon|RssFile):\s+(\d+) kB", text, flags=re.MULTILINE))
    return int(fields.get("RssAnon", 0)), int(fields.get("RssFile", 0))


class MemoryPeak:
    """Samples the summed RssAnon and RssFile of `pids()` every 50 ms until stopped; keeps the peaks."""

    def __init__(self, pids):
        self.pids, self.anon, self.file = pids, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            samples = [rss_kib(pid) for pid in self.pids()]
            self.anon = max(self.anon, sum(a for a, _ in samples))
            self.file = max(self.file, sum(f for _, f in samples))
            self._stop.wait(0.05)

    def __enter__(self) -> MemoryPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def available_kib() -> int:
    found = re.search(r"^MemAvailable:\s+(\d+) kB", Path("/proc/meminfo").read_text(), flags=re.MULTILINE)
    return int(found.group(1)) if found else 0


# ---- setup ----------------------------------------------------------------------------------------------------

def xmore(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, "-m", "xmore_db", *args], env=env, check=True, stdout=subprocess.DEVNULL)


def ensure_database(url: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    target = make_url(url)
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        if not conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": target.database}).first():
            conn.exec_driver_sql(f'CREATE DATABASE "{target.database}"')
    admin.dispose()


def build(workdir: Path, pairs: int, queries: int, database_url: str) -> tuple[dict[str, str], list[Path]]:
    """The store (built once, reused while its recipe is the same) and the query images; the service's env."""
    from xmore_db.toy import write_corpus, write_test_set

    recipe = {"pairs": pairs, "queries": queries, **MODELS}
    marker = workdir / "built.json"
    env = dict(os.environ, XMORE_HOME=str(workdir / "home"), XMORE_DATABASE_URL=database_url, **MODELS)
    for name in ("XMORE_QDRANT_URL", "XMORE_QDRANT_API_KEY", "XMORE_DEBUG"):
        env.pop(name, None)
    ensure_database(database_url)
    if not marker.exists() or json.loads(marker.read_text()) != recipe:
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        print(f"building the store in {workdir} ({pairs} pairs) ...", file=sys.stderr)
        write_corpus(workdir / "corpus", pairs, seed=0, sketch_fraction=0.25)
        write_test_set(workdir / "queries", "shape", queries, seed=999)
        xmore(env, "init")
        xmore(env, "ingest", str(workdir / "corpus"), "--corpus", "toy-web")
        marker.write_text(json.dumps(recipe))
    xmore(env, "init")  # the database may be new; safe to repeat
    images = sorted((workdir / "queries").glob("*/*.png"))
    return env, images


def process_home(workdir: Path, i: int) -> Path:
    """Client i's copy of the store directory (and the prompt cache), made once."""
    home = workdir / "process-homes" / str(i)
    if not (home / "qdrant").exists():
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
        for part in ("qdrant", "cache"):
            if (workdir / "home" / part).exists():
                shutil.copytree(workdir / "home" / part, home / part)
    return home


# ---- the two ways of doing the work ---------------------------------------------------------------------------

@dataclass
class Run:
    mode: str
    clients: int
    images: int = 0
    failed: int = 0
    wall: float = 0.0
    latencies: list[float] = field(default_factory=list)
    anon_kib: int = 0
    file_kib: int = 0
    load1: float = 0.0
    note: str = ""

    @property
    def throughput(self) -> float:
        return self.images / self.wall if self.wall else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000


def client_images(images: list[Path], client: int, requests: int) -> list[Path]:
    return [images[(client * requests + j) % len(images)] for j in range(requests)]


def start_service(env: dict[str, str], max_wait_ms: float) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen([sys.executable, "-m", "xmore_db", "serve", "--open", "--port", "0",
                                "--max-wait-ms", str(max_wait_ms)],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        return process, wait_ready(process)
    except BaseException:
        process.kill()
        process.wait()
        raise


def wait_ready(process: subprocess.Popen) -> str:
    """The URL the service says it serves on, once /readyz answers 200."""
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stderr], daemon=True).start()
    deadline = time.monotonic() + 300
    url = None
    while url is None:
        line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        found = re.search(r"xmore serve on (http://\S+)", line)
        url = found.group(1) if found else None
    while True:
        assert time.monotonic() < deadline and process.poll() is None, "xmore serve did not get ready"
        try:
            if httpx.get(f"{url}/readyz", timeout=30).status_code == 200:
                return url
        except httpx.TransportError:  # still loading the models: not listening yet
            pass
        time.sleep(0.2)


def run_serve(service: subprocess.Popen, url: str, images: list[Path], clients: int, requests: int,
              max_seconds: float, tag: str) -> Run:
    run = Run("serve", clients, load1=os.getloadavg()[0])
    lock = threading.Lock()
    stop_at = time.monotonic() + max_seconds

    def client(i: int) -> None:
        with httpx.Client(base_url=url, timeout=max_seconds + 60) as http:
            for path in client_images(images, i, requests):
                if time.monotonic() > stop_at:
                    return
                started = time.perf_counter()
                response = http.post("/v1/classify", files=[("images", (path.name, path.read_bytes(), "image/png"))],
                                     data={"labels": ",".join(LABELS), "stream": f"{tag}-c{i}"})
                elapsed = time.perf_counter() - started
                with lock:
                    if response.status_code == 200:
                        run.images += 1
                        run.latencies.append(elapsed)
                    else:
                        run.failed += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    with MemoryPeak(lambda: [service.pid]) as memory:
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        run.wall = time.perf_counter() - started
    run.anon_kib, run.file_kib = memory.anon, memory.file
    return run


def run_processes(env: dict[str, str], workdir: Path, images: list[Path], clients: int, requests: int,
                  max_seconds: float, tag: str) -> Run:
    run = Run("processes", clients, load1=os.getloadavg()[0])
    labels = workdir / "labels.txt"
    labels.write_text("\n".join(LABELS) + "\n")
    homes = [process_home(workdir, i) for i in range(clients)]
    processes: list[subprocess.Popen] = []
    starts: list[float] = []
    with MemoryPeak(lambda: [p.pid for p in processes if p.poll() is None]) as memory:
        started = time.perf_counter()
        for i, home in enumerate(homes):
            mine = client_images(images, i, requests)
            starts.append(time.perf_counter())
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "xmore_db", "classify", *map(str, mine), "--labels", str(labels),
                 "--stream", f"{tag}-c{i}"], env=dict(env, XMORE_HOME=str(home)),
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for process, begun in zip(processes, starts, strict=True):
            try:
                code = process.wait(timeout=max(1.0, started + max_seconds - time.perf_counter()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                code = None
            if code == 0:
                run.images += requests
                run.latencies.append(time.perf_counter() - begun)
            else:
                run.failed += requests
                run.note = "killed at --max-seconds" if code is None else f"a process exited {code}"
        run.wall = time.perf_counter() - started
    run.anon_kib, run.file_kib = memory.anon, memory.file
    return run


# ---- report ---------------------------------------------------------------------------------------------------

def row(run: Run, requests: int) -> str:
    unit = "1 image" if run.mode == "serve" else f"1 process, {requests} images"
    return (f"| {run.clients} | {run.mode} | {run.images}{f' ({run.failed} failed)' if run.failed else ''} | "
            f"{run.wall:.1f} | {run.throughput:.2f} | {run.pct(0.5):.0f} | {run.pct(0.95):.0f} | {unit} | "
            f"{run.anon_kib / 1024:.0f} | {run.file_kib / 1024:.0f} | {run.load1:.1f} |"
            f"{f' {run.note}' if run.note else ''}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", default="1,4,16,64", help="concurrent client counts")
    parser.add_argument("--process-clients", default="1,4,16",
                        help="client counts also run as separate processes (each loads torch and the models: "
                             "about 0.5 GiB RssAnon apiece with the toy models)")
    parser.add_argument("--requests", type=int, default=8, help="images each client classifies")
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs of each setting")
    parser.add_argument("--max-seconds", type=float, default=300, help="bound on one run")
    parser.add_argument("--pairs", type=int, default=500, help="corpus pairs in the store")
    parser.add_argument("--max-wait-ms", type=float, default=5.0, help="xmore serve --max-wait-ms")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/xmore-serve-bench"))
    parser.add_argument("--database-url", default=os.environ.get("XMORE_BENCH_DATABASE_URL",
                                                                 DEFAULT_PG.rsplit("/", 1)[0] + "/xmore_bench_serve"))
    args = parser.parse_args()
    client_counts = [int(c) for c in args.clients.split(",")]
    process_counts = {int(c) for c in args.process_clients.split(",") if c}

    env, images = build(args.workdir, args.pairs, max(64, args.requests * 4), args.database_url)
    run_id = uuid.uuid4().hex[:6]
    print(f"# machine: {os.cpu_count()} CPUs, load average {', '.join(f'{x:.2f}' for x in os.getloadavg())} "
          f"before the runs; shared with other jobs, so these figures were taken under load", flush=True)
    print(f"# store: {args.pairs} pairs, embedded (Qdrant Edge), toy models; history: PostgreSQL "
          f"({args.database_url.split('@')[-1]}), shared by the service and every process; "
          f"{args.requests} images per client; run id {run_id}", flush=True)

    service, url = start_service(env, args.max_wait_ms)
    idle_anon, idle_file = rss_kib(service.pid)
    print(f"# xmore serve ready at {url}: RssAnon {idle_anon / 1024:.0f} MiB, RssFile {idle_file / 1024:.0f} MiB "
          "before any request", flush=True)
    print("\n| clients | mode | images | wall s | images/s | p50 ms | p95 ms | latency of | peak RssAnon MiB "
          "| peak RssFile MiB | load1 |")
    print("|---:|---|---:|---:|---:|---:|---:|---|---:|---:|---:|", flush=True)
    results: dict[int, dict[str, list[Run]]] = {}
    per_process_kib = 600 * 1024
    try:
        for clients in client_counts:
            results[clients] = {"serve": [], "processes": []}
            with_processes = clients in process_counts
            if not with_processes:
                print(f"| {clients} | processes | - | | | | | | | | | not run (not in --process-clients): "
                      f"{clients} processes would hold about {clients * per_process_kib / 1024**2:.0f} GiB RssAnon",
                      flush=True)
            elif clients * per_process_kib * 1.5 > available_kib():
                with_processes = False
                print(f"| {clients} | processes | - | | | | | | | | | skipped: {clients} processes need about "
                      f"{clients * per_process_kib / 1024**2:.1f} GiB, more than the memory free", flush=True)
            for repeat in range(args.repeats):
                tag = f"bench-{run_id}-n{clients}-r{repeat}"
                served = run_serve(service, url, images, clients, args.requests, args.max_seconds, f"{tag}-serve")
                results[clients]["serve"].append(served)
                print(row(served, args.requests), flush=True)
                if not with_processes:
                    continue
                spawned = run_processes(env, args.workdir, images, clients, args.requests, args.max_seconds,
                                        f"{tag}-proc")
                results[clients]["processes"].append(spawned)
                per_process_kib = max(per_process_kib, spawned.anon_kib // max(1, clients))
                print(row(spawned, args.requests), flush=True)
    finally:
        service.terminate()
        code = service.wait(timeout=120)
    print(f"\n# xmore serve exited {code} after SIGTERM")
    print(f"# load average after the runs: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("\n| clients | serve images/s (median) | processes images/s (median) | throughput ratio (median of pairs) "
          "| memory: processes RssAnon / serve RssAnon |")
    print("|---:|---:|---:|---:|---:|")
    for clients, modes in results.items():
        served, spawned = modes["serve"], modes["processes"]
        serve_rate = statistics.median(r.throughput for r in served)
        if not spawned:
            print(f"| {clients} | {serve_rate:.2f} | - | - | - |")
            continue
        ratios = [s.throughput / p.throughput for s, p in zip(served, spawned, strict=False) if p.throughput]
        memory = statistics.median(p.anon_kib for p in spawned) / statistics.median(s.anon_kib for s in served)
        print(f"| {clients} | {serve_rate:.2f} | {statistics.median(p.throughput for p in spawned):.2f} | "
              f"{statistics.median(ratios):.1f}x | {memory:.1f}x |" if ratios else f"| {clients} | {serve_rate:.2f} "
              "| 0 | - | - |")


if __name__ == "__main__":
    main()
