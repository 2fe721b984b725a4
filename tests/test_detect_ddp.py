"""`train-detector --device 0,1`: ultralytics' DDP launches fresh processes from a script it writes,
handing them the trainer's arguments and callbacks. No GPU is needed to check the handoff: the
script ultralytics writes for a mixmag-configured trainer is run here as one process (what each
DDP rank runs, less the process group), and mixmag's callbacks and smear transforms must act in
it, and the launching process must read back what it recorded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_detect_drawn import make_yolo_dataset

from mixmag.errors import MixmagError

REPO = Path(__file__).resolve().parents[1]


def test_device_lists_are_checked_before_ultralytics_starts():
    from mixmag.detect.train import check_devices

    assert check_devices(None) == check_devices("cpu") == check_devices("0") == 1
    with pytest.raises(MixmagError, match="distinct indices"):
        check_devices("0,0")
    with pytest.raises(MixmagError, match="distinct indices"):
        check_devices("cuda:0,cuda:1")
    import torch

    n = torch.cuda.device_count()
    with pytest.raises(MixmagError, match=f"{n + 2} GPUs asked, {n} visible"):
        check_devices(",".join(map(str, range(n + 2))))


@pytest.mark.slow
def test_a_ddp_rank_gets_mixmags_callbacks_and_smear_transforms(tmp_path, monkeypatch):
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(REPO / "runs" / ".ultralytics"))
    monkeypatch.setenv("YOLO_OFFLINE", "1")
    from mixmag.detect import resume
    from mixmag.detect.train import (APPLIED_FILE, DEFAULTS, SMEAR_AUGMENT, _check_applied,
                                     _outcome, _record_applied, smear_albumentations)
    from mixmag.detect.yolo_env import setup_ultralytics

    YOLO = setup_ultralytics()
    from ultralytics.models.yolo.detect import DetectionTrainer
    from ultralytics.utils.dist import generate_ddp_file

    data = make_yolo_dataset(tmp_path / "ds", counts=(("train", 4), ("val", 2)), size=128)
    yolo = YOLO(str(REPO / "models" / "yolo11n-mixmag.yaml"))
    resume.install(yolo, exact=False)           # as train_detector does for several GPUs
    yolo.add_callback("on_pretrain_routine_end", _record_applied)
    args = {**DEFAULTS, **SMEAR_AUGMENT, "model": str(REPO / "models" / "yolo11n-mixmag.yaml"),
            "data": str(data), "imgsz": 64, "epochs": 1, "batch": 4, "workers": 0,
            "device": "cpu", "nbs": 4, "plots": False, "project": str(tmp_path / "runs"),
            "name": "ddp", "exist_ok": True, "augmentations": smear_albumentations()}
    # the launching process's trainer: built, never trained (as under DDP)
    launcher = DetectionTrainer(overrides=args, _callbacks=yolo.callbacks)
    launcher.model = launcher.get_model(cfg=str(REPO / "models" / "yolo11n-mixmag.yaml"))
    script = Path(generate_ddp_file(launcher))
    try:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        env.pop("RANK", None)
        r = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-2000:]
    finally:
        script.unlink(missing_ok=True)
        script.with_suffix(".pt").unlink(missing_ok=True)
    run = Path(launcher.save_dir)
    # mixmag's callback ran in the fresh process and saw the smear transforms applied there
    recorded = json.loads((run / APPLIED_FILE).read_text())
    assert recorded == [type(t).__name__ for t in smear_albumentations()]
    # the launcher (no data of its own) checks them and reads the outcome off results.csv
    assert getattr(launcher, "train_loader", None) is None
    assert _check_applied(launcher, "smear") == recorded
    metrics, epochs = _outcome(launcher)
    assert epochs == 1 and "metrics/mAP50(B)" in metrics
    # atomic checkpoints were installed; no exact-resume state is kept for several GPUs
    assert (run / "weights" / "last.pt").is_file()
    assert not resume.state_path(run).exists()
