"""The mask check (`synthesize --mask-check`, `benchmarks/detect.py --mask-check`): a cut-out whose
mask box reaches well outside OI-PBC's box of the same cell, or holds another of its white cells or
platelets, is disputed; drawn boxes and a drawn PBC folder with labels the test writes."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from mixmag.cli import main
from mixmag.data.split import load_manifest
from mixmag.errors import MixmagError
from mixmag.synth.cutout import cached_mask_box
from mixmag.synth.maskcheck import OUTSIDE_MAX, check_one, disputed_images

W = H = 360


def boxes(*rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["class_name", "x1", "y1", "x2", "y2"])


def test_a_mask_that_took_in_a_neighbour_is_disputed_a_tight_hand_box_is_not():
    cell = ("neutrophil", 130, 130, 230, 230)            # holds the image centre
    red = ("rbc", 230, 140, 300, 210)
    # the mask's box is the cell's, or the cell's within the hand-drawn box's few pixels
    assert not check_one((130, 130, 230, 230), boxes(cell, red), W, H)["disputed"]
    assert not check_one((127, 128, 233, 232), boxes(cell, red), W, H)["disputed"]
    # the mask took in the touching red cell: its box is 40 % outside the cell's
    r = check_one((130, 130, 300, 230), boxes(cell, red), W, H)
    assert r["disputed"] and r["outside"] > OUTSIDE_MAX and r["others_inside"] == 0
    # a mask that is too small (a pale cytoplasm missed) shows only what it holds: not disputed
    assert not check_one((160, 160, 200, 200), boxes(cell, red), W, H)["disputed"]
    # a platelet inside the mask's box is a second cell in one box, even when little is outside
    plt = ("platelet", 205, 205, 225, 225)
    r = check_one((130, 130, 232, 232), boxes(cell, red, plt), W, H)
    assert r["disputed"] and r["outside"] < OUTSIDE_MAX and r["others_inside"] == 1
    # red cells inside the box do not count as a second cell
    assert not check_one((130, 130, 232, 232), boxes(cell, ("rbc", 200, 200, 228, 228)), W, H)["disputed"]
    # no box on the centre: nothing to check against
    r = check_one((130, 130, 230, 230), boxes(red), W, H)
    assert not r["checked"] and not r["disputed"]


def _labels(manifest: Path, cache: Path, root: Path, disputed: set[str]) -> Path:
    """OI-PBC-style labels for the drawn images: the centre box is the cached mask's box, or for
    the sources in ``disputed`` the mask's box halved around its centre (the mask then reaches
    far outside it)."""
    from test_fields import OI_INDEX

    root.mkdir(parents=True)
    for r in load_manifest(manifest).itertuples(index=False):
        got = cached_mask_box(cache, r.sha256, r.class_name, "m5")
        if got is None:
            continue
        (x1, y1, x2, y2), (w, h) = got
        if r.path in disputed:
            cx, cy, bw, bh = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2, (y2 - y1) / 2
        else:
            cx, cy, bw, bh = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1
        (root / f"{Path(r.path).stem}.txt").write_text(
            f"{OI_INDEX[r.class_name]} {cx / w} {cy / h} {bw / w} {bh / h}\n")
    return root


@pytest.mark.slow
def test_synthesize_leaves_disputed_cut_outs_out_and_the_benchmark_finds_them(drawn_manifest, tmp_path):
    cache = tmp_path / "cache"
    base = ["--split", str(drawn_manifest), "--cache", str(cache), "--mask-version", "m5",
            "--splits", "train", "--n-train", "12", "--canvas", "384", "--cells", "3", "5",
            "--workers", "1", "--no-progress"]
    plain = tmp_path / "plain"
    assert main(["synthesize", *base, "--out", str(plain)]) == 0
    cells = pd.read_csv(plain / "cells.csv")
    used = sorted(cells["source"].unique())
    disputed = set(used[::3])                            # a third of the sources used
    labels = _labels(drawn_manifest, cache, tmp_path / "oi" / "labels", disputed)

    # the benchmark's check: exactly the images holding a disputed source are left out
    cells["image"] = cells["image"].map(lambda p: Path(p).name)
    bad, summary = disputed_images(plain, cells, labels)
    assert bad == set(cells.loc[cells["source"].isin(disputed), "image"])
    assert summary["sources_disputed"] == len(disputed) and summary["sources_checked"] == len(used)
    # an unchecked set is refused rather than passed as clean
    with pytest.raises(MixmagError, match="could be checked"):
        disputed_images(plain, cells, tmp_path / "oi" / "labels", cache=tmp_path / "nowhere")

    checked = tmp_path / "checked"
    assert main(["synthesize", *base, "--out", str(checked), "--mask-check",
                 "--labels", str(labels.parent)]) == 0
    meta = json.loads((checked / "dataset.json").read_text())
    n_train = (load_manifest(drawn_manifest)["split"] == "train").sum()
    assert meta["mask_check"]["sources"] == n_train
    assert meta["mask_check"]["disputed_left_out"] == len(disputed)
    kept = set(pd.read_csv(checked / "cells.csv")["source"])
    assert kept and not kept & disputed


def test_mask_check_needs_a_manifest(tmp_path, capsys):
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "BA_1.txt").write_text("0 0.5 0.5 0.3 0.3\n")
    assert main(["synthesize", "--cutouts", str(tmp_path / "none.npz"), "--out", str(tmp_path / "x"),
                 "--mask-check", "--labels", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--mask-check needs --split" in err and len(err.strip().splitlines()) == 1
