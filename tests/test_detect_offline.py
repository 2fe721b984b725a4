"""ultralytics under mixmag reaches for no network, installs nothing, writes only where told, and
trains without polars.

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
run = train_detector(data, os.path.join(sys.argv[1], "models/yolo11n-mixmag.yaml"), name="t",
                     imgsz=128, epochs=1, batch=4, workers=0, device="cpu")
det = YoloDetector(run / "weights" / "best.pt")
out = det.predict([read_image(p) for p in sorted(Path("ds/images/test").glob("*.jpg"))], conf=0.001)
from ultralytics import YOLO
YOLO(str(run / "weights" / "best.pt")).val(data=str(data), imgsz=128, batch=2, plots=False,
                                            device="cpu", verbose=False)
print("PROBE", json.dumps({"attempts": attempts, "run": str(run), "n_images": len(out), "local_tools": local_tools,
                           "polars_loaded": "polars" in sys.modules and sys.modules["polars"] is not None}))
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
