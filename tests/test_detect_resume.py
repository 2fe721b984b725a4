"""`train-detector --resume`: an interrupted detector run, resumed, ends where the uninterrupted run
ends (weights, per-epoch figures, final metrics), and the resume refuses what it cannot do.

The training runs are tiny (8 drawn 128-px composites at imgsz 64, 3 epochs, one CPU thread) and
run as real `python -m mixmag` processes, killed by signals."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from test_detect_drawn import make_yolo_dataset

from mixmag.cli import main

REPO = Path(__file__).resolve().parents[1]
EPOCHS = 4


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1",
            "YOLO_CONFIG_DIR": str(REPO / "runs" / ".ultralytics"), "YOLO_OFFLINE": "1"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    data = make_yolo_dataset(root / "ds", counts=(("train", 10), ("val", 2)), size=128, per_image=4)
    # nbs=4: one optimizer step a batch (ultralytics accumulates to 64 images otherwise, and
    # 4 epochs of 10 images would never step); workers 0: augmentation in this process;
    # close_mosaic=2: mosaic in epochs 1-2, closed from epoch 3 (both resume paths below)
    args = ["train-detector", "--data", data, "--single-class", "--imgsz", "64", "--epochs",
            str(EPOCHS), "--batch", "4", "--workers", "0", "--device", "cpu", "--project",
            root / "runs", "--set", "nbs=4", "close_mosaic=2"]
    return root, [str(a) for a in args]


def _mixmag(argv, log: Path) -> subprocess.Popen:
    with open(log, "w") as out:  # a file, not a pipe: the trainer's progress bars would fill it
        return subprocess.Popen([sys.executable, "-m", "mixmag", *argv], cwd=REPO, env=_env(),
                                stdout=out, stderr=subprocess.STDOUT, text=True)


def _saved_epoch(run: Path) -> int:
    """Epochs (1-based) whose resume state is on disk (saved after last.pt), 0 when none."""
    import torch

    path = run / "weights" / "mixmag_resume.pt"
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["epoch"]) + 1
    except (OSError, RuntimeError, EOFError, KeyError):
        return 0


def _run_until_epoch(argv, run: Path, epoch: int, sig, log: Path) -> int:
    """Start a run, send ``sig`` as soon as the state of ``epoch`` is saved (mid next epoch)."""
    p = _mixmag(argv, log)
    state = run / "weights" / "mixmag_resume.pt"
    t0, seen = time.time(), None
    try:
        while True:
            try:
                stamp = state.stat().st_mtime_ns
            except OSError:
                stamp = None
            if stamp != seen and stamp is not None:
                seen = stamp
                if _saved_epoch(run) >= epoch:
                    break
            if p.poll() is not None:
                raise AssertionError(f"finished before the kill:\n{log.read_text()[-3000:]}")
            if time.time() - t0 > 240:
                raise AssertionError("never reached the kill point")
            time.sleep(0.02)
        p.send_signal(sig)
        return p.wait(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()


def _digest(pt: Path) -> str:
    import torch

    ck = torch.load(pt, map_location="cpu", weights_only=False)  # our own test run's checkpoint
    h = hashlib.sha256()
    for k, v in sorted((ck.get("ema") or ck["model"]).state_dict().items()):
        h.update(k.encode() + v.cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _result(run: Path) -> dict:
    rec = json.loads((run / "mixmag_train.json").read_text())
    best = torch_names(run / "weights" / "best.pt")
    return {"best": _digest(run / "weights" / "best.pt"), "last": _digest(run / "weights" / "last.pt"),
            "results": pd.read_csv(run / "results.csv").drop(columns=["time"]).to_csv(index=False),
            "metrics": rec["metrics"], "epochs_done": rec["epochs_done"], "names": best,
            "args": rec["args"] | {"name": None}}


def torch_names(pt: Path) -> dict:
    import torch

    ck = torch.load(pt, map_location="cpu", weights_only=False)
    return {"names": dict((ck.get("ema") or ck["model"]).names), "mixmag": ck.get("mixmag")}


@pytest.mark.slow
def test_train_detector_killed_midway_resumes_to_the_same_weights(tiny):
    """SIGINT during epoch 2, resumed (mosaic on); that resume SIGKILLed during epoch 4, resumed
    again (mosaic closed at epoch 3, so albumentations' rebuilt pipeline is restored): the
    same weights (best.pt, last.pt, bit for bit), per-epoch losses and metrics, final metrics,
    class names and records as one uninterrupted run. Exact because --resume restores what
    ultralytics' last.pt lacks (float32 live model, EMA and optimizer; the random generators,
    shuffle and mosaic buffer: mixmag/detect/resume.py) and --workers 0 keeps the augmentation
    in the process; only results.csv's wall-clock column differs."""
    root, args = tiny
    ref = _mixmag([*args, "--name", "ref"], root / "ref.log")
    assert ref.wait(timeout=300) == 0, (root / "ref.log").read_text()[-3000:]
    want = _result(root / "runs" / "ref")
    assert want["epochs_done"] == EPOCHS and want["names"]["names"] == {0: "cell"}

    run = root / "runs" / "cut"
    cut = [*args, "--name", "cut"]
    code = _run_until_epoch(cut, run, 1, signal.SIGINT, root / "cut1.log")
    assert code != 0 and "interrupted; completed files are kept" in (root / "cut1.log").read_text()
    assert "Traceback" not in (root / "cut1.log").read_text()
    assert _saved_epoch(run) == 1, "the kill came too late to test anything"
    code = _run_until_epoch([*cut, "--resume"], run, 3, signal.SIGKILL, root / "cut2.log")
    assert code == -signal.SIGKILL and _saved_epoch(run) == 3, "the kill came too late"
    assert not (run / "mixmag_train.json").exists()
    # 4 rows when the kill fell between results.csv's row and last.pt: the resume drops it
    assert len(pd.read_csv(run / "results.csv")) in (3, 4)
    r = subprocess.run([sys.executable, "-m", "mixmag", *cut, "--resume"], cwd=REPO, env=_env(),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "resumed exactly at epoch 4" in r.stdout + r.stderr
    got = _result(run)
    assert got == want
    assert json.loads((run / "mixmag_train.json").read_text())["resumed_at_epochs"] == [2, 4]
    assert not (run / "weights" / "mixmag_resume.pt").exists()
    assert sorted(p.name for p in run.iterdir()) == sorted(p.name for p in (run.parent / "ref").iterdir())


@pytest.mark.slow
def test_resume_refuses_what_it_cannot_do(tiny, capsys):
    """One-line errors: nothing to resume (no run; a finished run), a run with other settings,
    --resume with --overwrite; a finished run is left as it was."""
    root, args = tiny
    ref = root / "runs" / "ref"
    if not (ref / "mixmag_train.json").is_file():
        pytest.skip("needs the uninterrupted run of the test above")
    before = {p: p.stat().st_mtime_ns for p in ref.rglob("*") if p.is_file()}
    cases = [([*args, "--name", "ghost", "--resume"], "no interrupted run at"),
             ([*args, "--name", "ref", "--resume"], "finished (mixmag_train.json); nothing to resume"),
             ([*args, "--name", "ref", "--resume", "--overwrite"], "--resume and --overwrite"),
             ([*args, "--name", "ref"], "already exists and is not empty")]
    for argv, msg in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and msg in err, err
    assert {p: p.stat().st_mtime_ns for p in ref.rglob("*") if p.is_file()} == before


def test_resume_checks_settings_against_the_run(tmp_path, capsys):
    """Given settings that differ from the interrupted run's are refused in one line before any
    training; a damaged last.pt is named. (No training: a fake run folder.)"""
    import torch

    data = make_yolo_dataset(tmp_path / "ds", counts=(("train", 2), ("val", 1)), size=64, per_image=1)
    run = tmp_path / "runs" / "r"
    (run / "weights").mkdir(parents=True)
    torch.save({"epoch": 0, "optimizer": {}, "train_args": {
        "data": str(Path(data).resolve()), "imgsz": 64, "epochs": 3, "single_cls": False}},
        run / "weights" / "last.pt")
    base = ["train-detector", "--data", str(data), "--project", str(tmp_path / "runs"), "--name",
            "r", "--resume"]
    for extra, msg in ((["--imgsz", "128"], "imgsz=128: run r was trained with imgsz=64"),
                       (["--epochs", "5"], "epochs=5: run r was trained with epochs=3"),
                       (["--single-class"], "--single-class: run r was trained without it")):
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and msg in err, err
    other = make_yolo_dataset(tmp_path / "ds2", counts=(("train", 1), ("val", 1)), size=64, per_image=1)
    assert main(["train-detector", "--data", str(other), "--project", str(tmp_path / "runs"),
                 "--name", "r", "--resume"]) == 2
    assert "was trained on" in capsys.readouterr().err
    (run / "weights" / "last.pt").write_bytes(b"\x80\x02truncated")
    assert main(base) == 2
    err = capsys.readouterr().err.strip()
    assert "not a readable ultralytics checkpoint" in err and len(err.splitlines()) == 1
