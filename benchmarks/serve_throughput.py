"""`mixmag serve` against `mixmag predict` on the same images (issue target: 100 uploaded 1024²
images finish at >= 0.9x predict's throughput, and the page stays responsive meanwhile).

The server runs in this process on a real port (uvicorn in a thread), as a user starts it; the
images are uploaded through its API in one request, as the page does. Its throughput counts from
the upload's answer to the batch's ``done`` (the models are loaded before, by a one-image batch,
as predict's own figure is timed after its models load). While the batch runs, a client asks for
the batch's status every 0.25 s and the page's index every second: their latencies are the
page's responsiveness. `mixmag predict` (no drawing, as the server) runs on the same images in a
child process before and after the server, and the best of the two is the reference.

    python benchmarks/serve_throughput.py --images datasets/mix-val41-m5/images/val --n 100 \
        --out benchmarks/results/serve-throughput-cpu.json
"""

from __future__ import annotations

import argparse
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mixmag.bench.record import finish_record, start_record  # noqa: E402


def predict_rate(src: Path, out: Path) -> float:
    r = subprocess.run([sys.executable, "-m", "mixmag", "predict", str(src), "--out", str(out),
                        "--overwrite", "--no-progress", "--no-draw"], cwd=REPO, capture_output=True,
                       text=True, check=True)
    return float(re.search(r"\(([\d.]+) images/s\)", r.stdout).group(1))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    import httpx
    import uvicorn

    from mixmag.serve.app import create_app

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", default="datasets/mix-val41-m5/images/val")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--out", help="JSON of the figures")
    a = ap.parse_args()
    files = sorted(p for p in Path(a.images).iterdir() if p.suffix.lower() in (".jpg", ".png"))[:a.n]
    if len(files) < a.n:
        raise SystemExit(f"{a.images}: {len(files)} images, {a.n} asked")
    rec = start_record(__file__, sys.argv[1:], images=a.images, n=len(files))
    work = Path(tempfile.mkdtemp(prefix="mixmag-serve-bench-"))
    src = work / "src"
    src.mkdir()
    for p in files:
        (src / p.name).symlink_to(p.resolve())
    rates = [predict_rate(src, work / "predict")]

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(work / "data", {}), host="127.0.0.1",
                                           port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    client = httpx.Client(base_url=base, timeout=60)
    while True:
        try:
            client.get("/api/info")
            break
        except httpx.ConnectError:
            time.sleep(0.1)

    def upload(paths) -> str:
        r = client.post("/api/batches", files=[("files", (p.name, p.read_bytes(), "image/jpeg"))
                                               for p in paths])
        r.raise_for_status()
        return r.json()["batch"]["id"]

    def wait(bid: str, latencies: list[float] | None = None) -> None:
        k = 0
        while True:
            t = time.perf_counter()
            b = client.get(f"/api/batches/{bid}").json()["batch"]
            if latencies is not None:
                latencies.append(time.perf_counter() - t)
                if k % 4 == 0:
                    t = time.perf_counter()
                    client.get("/")
                    latencies.append(time.perf_counter() - t)
            k += 1
            if b["status"] in ("done", "failed"):
                if b["status"] == "failed":
                    raise SystemExit(f"batch failed: {b['error']}")
                return
            time.sleep(0.25)

    wait(upload(files[:1]))  # the models load here, outside the timing
    t_up = time.perf_counter()
    bid = upload(files)
    t0 = time.perf_counter()
    lat: list[float] = []
    wait(bid, lat)
    serve_s = time.perf_counter() - t0
    upload_s = t0 - t_up
    server.should_exit = True
    thread.join(30)
    rates.append(predict_rate(src, work / "predict2"))
    serve_rate = len(files) / serve_s
    ref = max(rates)
    lat_ms = sorted(x * 1000 for x in lat)
    res = {"predict_images_per_s": rates, "serve_images_per_s": round(serve_rate, 3),
           "upload_seconds": round(upload_s, 2), "ratio": round(serve_rate / ref, 3),
           "target_ratio": 0.9, "met": serve_rate / ref >= 0.9,
           "responsiveness_ms": {"requests": len(lat_ms),
                                 "median": round(statistics.median(lat_ms), 1),
                                 "p95": round(lat_ms[int(0.95 * (len(lat_ms) - 1))], 1),
                                 "max": round(lat_ms[-1], 1)}}
    rec.update(res)
    print(f"serve {serve_rate:.2f} images/s vs predict {ref:.2f} (best of {rates}): "
          f"{serve_rate / ref:.2f}x (target 0.9: {'met' if res['met'] else 'missed'}); upload "
          f"{upload_s:.1f} s; page requests while busy: median {res['responsiveness_ms']['median']} ms,"
          f" p95 {res['responsiveness_ms']['p95']} ms, max {res['responsiveness_ms']['max']} ms")
    if a.out:
        print(f"wrote {finish_record(rec, a.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
