"""Outputs under a careful, hostile user: one writer per folder, names that cannot collide, whole
folders replaced with --overwrite, file-system errors in one line, modes that follow the umask.
Each behaviour runs real `mixmag` processes where two runs or a dying disk are involved."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import pandas as pd
import pytest
from test_detect_drawn import draw_disks

from mixmag.zoo import load_zoo

REPO = Path(__file__).resolve().parents[1]
DETECTOR = load_zoo().default("detect").file
ENV = {**os.environ, "YOLO_OFFLINE": "1", "PYTHONPATH": str(REPO)}


def mixmag(*argv, timeout=300, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mixmag", *map(str, argv)], capture_output=True,
                          text=True, timeout=timeout, env=env or ENV)


def images(folder: Path, names: list[str]) -> Path:
    for i, n in enumerate(names):
        p = folder / n
        p.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(p), draw_disks(256, 256, [(i % 8, 80, 90, 28), (3, 180, 160, 24)], seed=i))
    return folder


@pytest.fixture
def needs_detector():
    if not DETECTOR.is_file():
        pytest.skip(f"default detector {DETECTOR} absent")


def test_a_second_run_on_one_out_is_refused_naming_the_holder(tmp_path, needs_detector):
    """Two real processes: one holds --out (a predict's lock), the second predict exits 2 with
    one line naming the holder, and nothing of it lands in --out; once the first is gone the
    folder is free again."""
    src = images(tmp_path / "src", ["a.jpg"])
    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c",
                               "import sys, time; from mixmag.fileio import output_lock\n"
                               f"with output_lock({str(out)!r}, 'mixmag predict'):\n"
                               "    print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True, env=ENV)
    try:
        assert holder.stdout.readline().strip() == "held"
        r = mixmag("predict", src, "--out", out, "--no-progress")
        err = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(err) == 1, r.stderr
        assert "another run is writing it" in err[0] and f"pid {holder.pid}" in err[0]
        assert not out.exists() or not any(out.iterdir())
    finally:
        holder.kill()
        holder.wait()
    r = mixmag("predict", src, "--out", out, "--no-progress")
    assert r.returncode == 0, r.stderr
    # the lock of a killed holder was left behind: the next run says the earlier one did not finish
    assert "did not finish" in r.stderr
    assert not list(tmp_path.glob(".out.*")), "no lock or temporary folder is left beside --out"


def test_two_synthesize_runs_on_one_out_do_not_mix(tmp_path, drawn_manifest):
    """Two real `synthesize` processes started together on one --out (seeds 2 and 3): one
    writes the dataset, the other is refused in one line; the dataset validates as one seed's."""
    out = tmp_path / "mix"
    args = ["synthesize", "--split", drawn_manifest, "--n", "6", "--canvas", "256", "--cells",
            "2", "3", "--workers", "1", "--no-progress", "--cache", tmp_path / "cache", "--out", out]
    procs = [subprocess.Popen([sys.executable, "-m", "mixmag", *map(str, args), "--seed", str(s)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
             for s in (2, 3)]
    res = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(c for c, _ in res)
    assert codes == [0, 2], res
    refused = next(e for c, e in res if c == 2)
    # refused by the lock while the other writes or, on a loaded machine where the other has
    # already finished, by the finished dataset; the test above holds the lock for certain
    assert ("another run is writing it" in refused or "already exists" in refused), refused
    assert len(refused.strip().splitlines()) == 1
    seed = json.loads((out / "dataset.json").read_text())["seed"]
    winner = next(s for s, (c, _) in zip((2, 3), res) if c == 0)
    assert seed == winner
    r = mixmag("validate", out, "--split", drawn_manifest)
    assert r.returncode == 0, r.stdout[-2000:]


def test_drawn_names_never_collide_and_overwrite_replaces_the_folder(tmp_path, needs_detector):
    """cell.jpg and cell.png, x__a.jpg and x/a.jpg: four drawings. --overwrite replaces the
    folder as a whole (a bigger earlier run leaves nothing behind), and an --out inside a
    --recursive source never reads its own outputs back."""
    src = images(tmp_path / "src", ["cell.jpg", "cell.png", "x__a.jpg", "x/a.jpg"])
    out = src / "pred"  # inside the source on purpose
    r = mixmag("predict", src, "--recursive", "--out", out, "--no-progress")
    assert r.returncode == 0, r.stderr
    drawn = sorted(p.relative_to(out / "drawn").as_posix() for p in (out / "drawn").rglob("*.jpg"))
    assert drawn == ["cell.jpg", "cell.png.jpg", "x/a.jpg", "x__a.jpg"]
    assert len(pd.read_csv(out / "counts.csv")) == 4
    # a smaller second run with --overwrite: exactly its own files remain, and the first run's
    # outputs inside the source were not read as inputs
    (src / "cell.png").unlink()
    r = mixmag("predict", src, "--recursive", "--out", out, "--no-progress", "--overwrite")
    assert r.returncode == 0, r.stderr
    assert sorted(pd.read_csv(out / "counts.csv")["image"]) == ["cell.jpg", "x/a.jpg", "x__a.jpg"]
    assert sorted(p.name for p in (out / "drawn").rglob("*.jpg")) == ["a.jpg", "cell.jpg", "x__a.jpg"]
    assert not [p for p in src.iterdir() if p.name.startswith(".pred.")]


def test_outputs_follow_the_umask(tmp_path, needs_detector):
    src = images(tmp_path / "src", ["a.jpg"])
    env = dict(ENV)
    for mask, want in ((0o022, 0o644), (0o077, 0o600)):
        out = tmp_path / f"out{mask:o}"
        r = subprocess.run(["sh", "-c", f"umask {mask:03o} && exec \"$0\" -m mixmag predict "
                            f"{src} --out {out} --no-progress", sys.executable],
                           capture_output=True, text=True, env=env, timeout=300)
        assert r.returncode == 0, r.stderr
        for f in ("cells.csv", "cells.json", "counts.csv", "coco_results.json", "drawn/a.jpg"):
            assert (out / f).stat().st_mode & 0o777 == want, (mask, f)


def _mount_tmpfs(path: Path, options: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                       capture_output=True, text=True)
    return r.returncode == 0


@pytest.mark.parametrize("kind", ["read-only", "full"])
def test_a_file_system_that_refuses_writes_is_one_line(tmp_path, kind, needs_detector):
    """A read-only file system (EROFS) and a full one (ENOSPC, a 64 kB tmpfs): predict and
    synthesize exit 2 with one line naming the path and the fix, no traceback, nothing
    half-written. Needs a tmpfs mount (root); elsewhere skipped with that reason."""
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "size=64k" if kind == "full" else "size=1m"):
        pytest.skip("cannot mount a tmpfs here (needs root and mount permission)")
    try:
        if kind == "read-only":
            subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        src = images(tmp_path / "src", [f"{i}.png" for i in range(3)])
        r = mixmag("predict", src, "--out", disk / "out", "--no-progress")
        err = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(err) == 1 and "Traceback" not in r.stderr, r.stderr
        word = "read-only" if kind == "read-only" else "no space left"
        assert word in err[0] and str(disk) in err[0], err[0]
        if kind == "full":
            assert not [p for p in (disk / "out").rglob("*") if p.is_file()] if \
                (disk / "out").exists() else True
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def test_report_refuses_two_images_sharing_a_file_name(tmp_path):
    """x/000001.jpg and y/000001.jpg are different images: scored against truth 000001.jpg they
    would be merged; the report refuses in one line instead."""
    from mixmag.evaluate.synthetic import synthetic_truth, write_dataset

    truth = synthetic_truth(n_images=3, seed=0)
    ds = write_dataset(tmp_path / "ds", truth)
    cells = pd.read_csv(ds / "cells.csv")
    name = Path(cells["image"].iloc[0]).name
    row = {"x1": 10, "y1": 10, "x2": 40, "y2": 40, "class_name": "neutrophil", "score": 0.9}
    pd.DataFrame([{"image": f"x/{name}", **row}, {"image": f"y/{name}", **row}]).to_csv(
        tmp_path / "pred.csv", index=False)
    r = mixmag("report", "--truth", ds, "--pred", tmp_path / "pred.csv", "--out", tmp_path / "rep")
    err = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(err) == 1, r.stderr
    assert f"share the file name {name}" in err[0] and f"x/{name}" in err[0]
    assert not (tmp_path / "rep").exists() or not any((tmp_path / "rep").iterdir())


def test_report_overwrite_keeps_no_stale_file(tmp_path):
    from mixmag.evaluate.synthetic import synthetic_predictions, synthetic_truth, write_dataset

    truth = synthetic_truth(n_images=4, seed=1)
    ds = write_dataset(tmp_path / "ds", truth)
    synthetic_predictions(truth, seed=1).to_csv(tmp_path / "pred.csv", index=False)
    rep = tmp_path / "rep"
    r = mixmag("report", "--truth", ds, "--pred", tmp_path / "pred.csv", "--out", rep,
               "--bootstrap", "0")
    assert r.returncode == 0, r.stderr
    (rep / "from-an-earlier-run.png").write_bytes(b"stale")
    before = {p.name for p in rep.iterdir()}
    r = mixmag("report", "--truth", ds, "--pred", tmp_path / "pred.csv", "--out", rep,
               "--bootstrap", "0", "--overwrite")
    assert r.returncode == 0, r.stderr
    assert {p.name for p in rep.iterdir()} == before - {"from-an-earlier-run.png"}
