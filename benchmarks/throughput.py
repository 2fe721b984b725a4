"""End-to-end `mixmag predict` throughput, side by side in one run: 1024² composites, real
360 x 363 fields (fitted canvases and padded tiles), the Ray engine against a local run, and the
detector alone against ultralytics' own `predict` of the same weights.

    python benchmarks/throughput.py --composites datasets/mix-val41-m5/images/val \
        --fields datasets/fields-val/images/val --n-composites 200 --n-fields 600 --ray-workers 2

Each configuration runs `mixmag predict` (default models and backend, no drawing) as its own
process, `--repeats` times, interleaved, and the images/s predict prints is kept (timed after the
models load; for Ray, starting the local cluster and its actors is inside it). The Ray runs
must write the local run's cells.csv byte for byte. `--ultralytics` adds the detector alone
(`--classifier none`, predict's default backend) and ultralytics' `YOLO(weights).predict` of the
same .pt on the same composites (its default PyTorch runtime, the detector's own input size, streamed, in a process of
its own, timed after the model loads, as predict times itself). `--spinning` adds composites
and the detector alone with ONNX Runtime's thread spinning on (`MIXMAG_ORT_SPIN=1`; predict
turns it off). Prints the ratios the targets name: fields / composites
(fitted), Ray / local, detector alone / ultralytics. Writes benchmarks/results/throughput-cpu.json with
mixmag.bench.record's provenance (machine, load before and after).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mixmag.bench.record import finish_record, start_record  # noqa: E402


def _subset(folder: str, n: int, into: Path) -> Path:
    names = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in (".jpg", ".png"))
    if not names:
        raise SystemExit(f"{folder}: no images")
    step = max(1, len(names) // n)  # evenly spaced: names sort by class
    into.mkdir(parents=True, exist_ok=True)
    for p in names[::step][:n]:
        (into / p.name).symlink_to(p.resolve())
    return into


def predict(source: Path, out: Path, *extra: str, env: dict | None = None) -> float:
    import os

    cmd = [sys.executable, "-m", "mixmag", "predict", str(source), "--out", str(out),
           "--overwrite", "--no-progress", "--no-draw", *extra]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True,
                       env={**os.environ, **(env or {})})
    if r.returncode:
        raise SystemExit(f"{' '.join(cmd[3:])} failed:\n{r.stderr[-2000:]}")
    m = re.search(r"\(([\d.]+) images/s\)", r.stdout)
    return float(m.group(1))


ULTRALYTICS = """
import sys, time
from mixmag.detect.yolo_env import setup_ultralytics
from mixmag.zoo import load_zoo
YOLO = setup_ultralytics()
model = YOLO(str(load_zoo().default("detect").file), task="detect")
t0 = time.perf_counter()  # as predict's own figure: after the model is loaded
n = sum(1 for _ in model.predict(sys.argv[1], imgsz=model.overrides.get("imgsz", 640), device="cpu", stream=True, verbose=False))
print(f"({n / (time.perf_counter() - t0):.3f} images/s)")
"""


def ultralytics_predict(source: Path) -> float:
    r = subprocess.run([sys.executable, "-c", ULTRALYTICS, str(source)], cwd=REPO,
                       capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"ultralytics predict failed:\n{r.stderr[-2000:]}")
    return float(re.search(r"\(([\d.]+) images/s\)", r.stdout).group(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--composites", default="datasets/mix-val41-m5/images/val")
    ap.add_argument("--fields", default="datasets/fields-val/images/val")
    ap.add_argument("--n-composites", type=int, default=200)
    ap.add_argument("--n-fields", type=int, default=600)
    ap.add_argument("--ray-workers", type=int, default=2, help="0: no Ray runs")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--ray-batch", type=int, default=0,
                    help="also Ray with this many images an actor call (MIXMAG_RAY_BATCH; "
                         "predict's default is 32)")
    ap.add_argument("--ultralytics", action="store_true",
                    help="also the detector alone against ultralytics' own predict")
    ap.add_argument("--spinning", action="store_true",
                    help="also composites and the detector alone with ONNX Runtime's thread "
                         "spinning on (MIXMAG_ORT_SPIN=1), against predict's default (off)")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "throughput-cpu.json"))
    a = ap.parse_args()
    rec = start_record(__file__, sys.argv[1:], composites=a.composites, fields=a.fields)
    work = Path(tempfile.mkdtemp(prefix="mixmag-throughput-"))
    comp = _subset(a.composites, a.n_composites, work / "composites")
    fields = _subset(a.fields, a.n_fields, work / "fields")
    configs = {"composites": (comp, []), "fields_fit": (fields, []),
               "fields_pad": (fields, ["--small-images", "pad"])}
    if a.ray_workers:
        configs["composites_ray"] = (comp, ["--engine", "ray", "--workers", str(a.ray_workers)])
    if a.ray_batch:
        configs["composites_ray_batch"] = (comp, ["--engine", "ray", "--workers", str(a.ray_workers)],
                                           {"MIXMAG_RAY_BATCH": str(a.ray_batch)})
    if a.ultralytics or a.spinning:
        configs["detector_alone"] = (comp, ["--classifier", "none"])
    spin = {"MIXMAG_ORT_SPIN": "1"}
    if a.spinning:
        configs["composites_spin"] = (comp, [], spin)
        configs["detector_alone_spin"] = (comp, ["--classifier", "none"], spin)
    runs: dict[str, list[float]] = {k: [] for k in configs}
    if a.ultralytics:
        runs["ultralytics_predict"] = []
    for _ in range(a.repeats):
        for k, (src, extra, *env) in configs.items():
            runs[k].append(predict(src, work / "out" / k, *extra, env=env[0] if env else None))
            print(f"{k}: {runs[k][-1]:.2f} images/s", flush=True)
        if a.ultralytics:
            runs["ultralytics_predict"].append(ultralytics_predict(comp))
            print(f"ultralytics_predict: {runs['ultralytics_predict'][-1]:.2f} images/s", flush=True)
    best = {k: max(v) for k, v in runs.items()}
    ratios = {"fields_fit_over_composites": best["fields_fit"] / best["composites"],
              "fields_fit_over_fields_pad": best["fields_fit"] / best["fields_pad"]}
    if a.ultralytics:
        ratios["detector_alone_over_ultralytics"] = best["detector_alone"] / best["ultralytics_predict"]
    if a.spinning:
        ratios["composites_spin_off_over_on"] = best["composites"] / best["composites_spin"]
        ratios["detector_alone_spin_off_over_on"] = best["detector_alone"] / best["detector_alone_spin"]
        rec["spin_cells_csv_identical"] = (
            (work / "out" / "composites" / "cells.csv").read_bytes()
            == (work / "out" / "composites_spin" / "cells.csv").read_bytes())
    if a.ray_workers:
        same = ((work / "out" / "composites" / "cells.csv").read_bytes()
                == (work / "out" / "composites_ray" / "cells.csv").read_bytes())
        ratios["ray_over_local"] = best["composites_ray"] / best["composites"]
        if a.ray_batch:
            ratios["ray_batch_over_local"] = best["composites_ray_batch"] / best["composites"]
            rec["ray_batch_cells_csv_identical"] = (
                (work / "out" / "composites" / "cells.csv").read_bytes()
                == (work / "out" / "composites_ray_batch" / "cells.csv").read_bytes())
        rec["ray_cells_csv_identical"] = same
        print(f"Ray ({a.ray_workers} workers) cells.csv identical to the local run's: {same}")
    rec.update(images={"composites": len(list(comp.iterdir())), "fields": len(list(fields.iterdir()))},
               runs=runs, best=best, ratios={k: round(v, 3) for k, v in ratios.items()})
    for k, v in ratios.items():
        print(f"{k}: {v:.2f}")
    print(f"wrote {finish_record(rec, a.out)}")


if __name__ == "__main__":
    main()
