"""ultralytics under mixmag reaches for no network, installs nothing, writes only where told, and
trains without polars; the AMP check never fetches weights; the pandas results reader matches
ultralytics' polars one.

The run happens in a fresh interpreter (import-time behaviour counts): socket connects, DNS
look-ups and subprocess launches are recorded and refused, polars is made unimportable, HOME is
an empty folder, and afterwards the only new files are the dataset, runs/ and the config folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

PROBE = r'''
import json, os, socket, subprocess, sys
attempts = []

def refuse(kind):
    def f(*a, **k):
        attempts.append([kind, repr(a[:2])[:200]])
        raise OSError(f"network disabled by test ({kind})")
    return f

socket.socket.connect = refuse("connect")
socket.socket.connect_ex = refuse("connect_ex")
socket.create_connection = refuse("create_connection")
socket.getaddrinfo = refuse("getaddrinfo")
socket.gethostbyname = refuse("gethostbyname")
_popen = subprocess.Popen
local_tools = []
class NoInstall(_popen):
    """Local look-ups (ldconfig, fc-list) run; installers and downloaders are refused."""
    def __init__(self, args, *a, **k):
        words = " ".join(map(str, args if isinstance(args, (list, tuple)) else [args]))
        if any(w in words for w in ("pip", "uv ", "git", "curl", "wget", "apt")):
            attempts.append(["subprocess", words[:200]])
            raise OSError("installers disabled by test")
        local_tools.append(words.split()[0])
        super().__init__(args, *a, **k)
subprocess.Popen = NoInstall
for mod in ("polars", "ultralytics_platform", "thop"):
    sys.modules[mod] = None  # import raises ImportError, as when the wheel is absent

sys.path.insert(0, sys.argv[1]); sys.path.insert(0, os.path.join(sys.argv[1], "tests"))
from pathlib import Path
from test_detect_drawn import make_yolo_dataset
from mixmag.detect.train import train_detector
from mixmag.detect.detector import YoloDetector
from mixmag.images import read_image

data = make_yolo_dataset(Path("ds"), counts=(("train", 4), ("val", 2), ("test", 2)), size=128)
# plots=True needs polars: the wrapper must turn it off; amp=True goes through the AMP check;
# imgsz 96 on 128-px canvases: predict must tile at 128 (the scale the detector learned)
run = train_detector(data, os.path.join(sys.argv[1], "models/yolo11n-mixmag.yaml"), name="t",
                     imgsz=96, epochs=1, batch=4, workers=0, device="cpu", plots=True, amp=True)
import torch
import ultralytics.engine.trainer as tr
last = torch.load(run / "weights" / "last.pt", map_location="cpu", weights_only=False)
best = torch.load(run / "weights" / "best.pt", map_location="cpu", weights_only=False)
det = YoloDetector(run / "weights" / "best.pt")
out = det.predict([read_image(p) for p in sorted(Path("ds/images/test").glob("*.jpg"))], conf=0.001)
from ultralytics import YOLO
YOLO(str(run / "weights" / "best.pt")).val(data=str(data), imgsz=128, batch=2, plots=False,
                                            device="cpu", verbose=False)
print("PROBE", json.dumps({"attempts": attempts, "run": str(run), "n_images": len(out), "local_tools": local_tools,
                           "polars_loaded": "polars" in sys.modules and sys.modules["polars"] is not None,
                           "reader": tr.BaseTrainer.read_results_csv.__module__,
                           "amp_check": tr.check_amp.__module__ + "." + tr.check_amp.__name__,
                           "train_results": last.get("train_results"), "mixmag": best.get("mixmag"),
                           "plots": (run / "args.yaml").read_text().count("plots: false"),
                           "canvas": det.train_canvas, "imgsz": det.imgsz}))
'''


@pytest.mark.slow
def test_train_and_predict_offline_without_polars(tmp_path):
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    (work / "probe.py").write_text(PROBE)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("YOLO_", "MIXMAG_", "MPLCONFIGDIR", "XDG_"))}
    env.update(HOME=str(home), OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "probe.py", str(REPO)], cwd=work, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    line = next(l for l in proc.stdout.splitlines() if l.startswith("PROBE "))
    result = json.loads(line[6:])
    assert result["attempts"] == [], result["attempts"]
    assert result["n_images"] == 2 and not result["polars_loaded"]
    assert result["reader"] == "mixmag.detect.yolo_env"  # polars hidden: pandas reader installed
    assert result["amp_check"] == "mixmag.detect.yolo_env._local_amp_check"
    assert result["plots"] == 1  # plots=True asked, turned off (polars missing)
    # the checkpoint keeps the results table, as ultralytics' polars reader would give it
    tr = result["train_results"]
    assert tr["epoch"] == [1] and len(tr["metrics/mAP50(B)"]) == 1 and len(tr) > 10
    assert result["mixmag"] == {"train_canvas": 128, "imgsz": 96}
    assert (result["canvas"], result["imgsz"]) == (128, 96)
    # nothing in HOME; in the working folder only the dataset, the probe and runs/
    assert not any(home.rglob("*")), sorted(home.rglob("*"))
    assert sorted(p.name for p in work.iterdir()) == ["ds", "probe.py", "runs"]
    cfg = work / "runs" / ".ultralytics"
    assert (cfg / "Ultralytics" / "settings.json").is_file()
    assert json.loads((cfg / "Ultralytics" / "settings.json").read_text())["sync"] is False
    run = Path(result["run"])
    assert run.parent == (work / "runs" / "detect").resolve()
    assert {"best.pt", "last.pt", "magnification.json"} <= {p.name for p in (run / "weights").iterdir()}
    assert (run / "results.csv").read_text().startswith("epoch,")


HEADER = ["epoch", "time", "train/box_loss", "train/cls_loss", "train/dfl_loss",
          "metrics/precision(B)", "metrics/recall(B)", "metrics/mAP50(B)", "metrics/mAP50-95(B)",
          "val/box_loss", "val/cls_loss", "val/dfl_loss", "lr/pg0"]
RESULTS_CSV = ",".join(HEADER) + """
1,12.5,3.1,4.2,1.9,0.001,0.02,0.0005,0.0001,3.0,4.1,1.8,0.00066
2,24.75,2.9,3.8,1.7,0.01,0.1,0.004,0.001,2.8,3.7,1.6,0.0012
"""


class _Holder:
    def __init__(self, csv):
        self.csv = csv


def test_pandas_results_reader_matches_ultralytics(tmp_path):
    """The polars-free reader returns what ultralytics' polars reader returns."""
    from mixmag.detect.yolo_env import read_results_csv_pandas, setup_ultralytics

    setup_ultralytics()
    csv = tmp_path / "results.csv"
    csv.write_text(RESULTS_CSV)
    ours = read_results_csv_pandas(_Holder(csv))
    assert ours["epoch"] == [1, 2] and ours["time"] == [12.5, 24.75]
    assert ours["metrics/mAP50(B)"] == [0.0005, 0.004] and len(ours) == 13
    assert read_results_csv_pandas(_Holder(tmp_path / "missing.csv")) == {}
    pytest.importorskip("polars")
    from ultralytics.engine.trainer import BaseTrainer

    # polars importable here: ultralytics' own reader stays in place, and both agree
    assert BaseTrainer.read_results_csv.__module__ == "ultralytics.engine.trainer"
    assert BaseTrainer.read_results_csv(_Holder(csv)) == ours


def test_amp_check_never_downloads(tmp_path, monkeypatch):
    """ultralytics' check_amp fetches yolo26n.pt from github even with YOLO_OFFLINE=1 (measured:
    a connect to github.com:443); under mixmag the trainer calls a local check instead."""
    import torch

    from mixmag.detect.yolo_env import setup_ultralytics

    setup_ultralytics()
    import ultralytics.engine.trainer as tr
    import ultralytics.utils.downloads as dl

    def no_download(*a, **k):
        raise AssertionError(f"download attempted: {a[:1]}")

    monkeypatch.setattr(dl, "attempt_download_asset", no_download)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)

    class CudaParam:
        device = torch.device("cuda")

    class OnCuda(torch.nn.Module):  # a model whose parameters report a CUDA device
        def parameters(self, recurse=True):
            yield CudaParam()

    assert tr.check_amp(OnCuda()) is True  # AMP kept on the GPU, no model loaded
    assert tr.check_amp(torch.nn.Linear(1, 1)) is False  # and off on the CPU


@pytest.mark.slow
def test_device_training_script_without_polars(tmp_path):
    """tools/device_train_detector.py end to end on the CPU, polars hidden: the time budget stops
    training, every promised file is written, the recipe is the documented one."""
    sys.path.insert(0, str(REPO / "tests"))
    from test_detect_drawn import make_yolo_dataset

    data = make_yolo_dataset(tmp_path / "ds", counts=(("train", 8), ("val", 2)), size=128)
    out = tmp_path / "runs" / "dev"
    code = ("import sys, runpy; sys.modules['polars'] = None; "
            f"sys.argv = ['x', '--data', {str(data)!r}, '--out', {str(out)!r}, '--minutes', '0.05', "
            "'--imgsz', '96', '--batch', '4', '--workers', '0', '--device', 'cpu', "
            "'--bench-batches', '1,2']; "
            f"runpy.run_path({str(REPO / 'tools' / 'device_train_detector.py')!r}, run_name='__main__')")
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads(next(l for l in proc.stdout.splitlines()
                              if l.startswith("DEVICE_TRAIN "))[13:])
    assert summary["run"] == str(out) and set(summary["inference"]) == {"1", "2"}
    assert {"best.pt", "last.pt", "magnification.json"} <= {p.name for p in (out / "weights").iterdir()}
    import yaml

    args = yaml.safe_load((out / "args.yaml").read_text())
    assert args["time"] == pytest.approx(0.05 / 60) and args["optimizer"] == "AdamW"
    assert args["lr0"] == pytest.approx(0.000833) and args["plots"] is False and args["amp"] is False
    assert args["scale"] == 0.0 and args["cache"] == "ram"
    metrics = json.loads((out / "device_metrics.json").read_text())
    assert metrics["polars_installed"] is False and metrics["train_canvas"] == 128
    assert metrics["train"]["epochs"] >= 1 and metrics["train"]["train_seconds"] < 30
    assert metrics["n_train_images"] == 8 and "metrics/mAP50(B)" in metrics["final_val"]


def test_model_yamls_build_offline_with_three_strides_and_yolo11n_sized_resnet(tmp_path):
    """Every models/*-mixmag.yaml builds from scratch and detects at strides 8/16/32; the ResNet-style
    backbone of comparison (c) stays within 30 % of yolo11n's parameters, as its yaml claims."""
    import torch

    from mixmag.detect.yolo_env import setup_ultralytics

    YOLO = setup_ultralytics(tmp_path / "cfg")
    params = {}
    for y in sorted((REPO / "models").glob("*-mixmag.yaml")):  # the network YAMLs (not zoo.yaml)
        m = YOLO(str(y)).model
        assert m.stride.tolist() == [8.0, 16.0, 32.0], y.name
        m.eval()
        with torch.no_grad():
            out = m(torch.zeros(1, 3, 64, 64))
        pred = out[0] if isinstance(out, (list, tuple)) else out
        assert pred.shape[1] == 4 + 8, y.name  # 4 box coordinates + 8 class scores a location
        params[y.name] = sum(p.numel() for p in m.parameters())
    ratio = params["yolo11n-resnet-mixmag.yaml"] / params["yolo11n-mixmag.yaml"]
    assert 0.7 < ratio < 1.3, ratio
