"""Every bad input of issue 6 against every command it applies to (a table).

Each case says what the command must do:
- "error": exit status 2, exactly one stderr line matching the case's pattern (naming the file or
  setting), no traceback, and the output (pre-filled, with --overwrite, so the refusal of an
  existing output is not what stops it) is byte-for-byte unchanged;
- "skip": the rest of the work goes on: exit 0, a warning naming the file and a count;
- "ok": unusual but valid input (alpha, 16-bit, grey, CMYK, EXIF-rotated): exit 0, used.
The count of cases handled is printed at the end of the pytest run (tests/conftest.py hook).
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd
import pytest

from badinputs import (BAD_IMAGES, ODD_IMAGES, manifest_variant, pbc_variant, small_pbc,
                       write_image)
from mixmag.cli import main
from mixmag.zoo import load_zoo

REPO = Path(__file__).resolve().parents[1]
DETECTOR = load_zoo().default("detect").file  # the zoo's default detector

# filled by the tests below, printed by the pytest_terminal_summary hook in conftest.py
HANDLED: dict[str, bool] = {}


# ------------------------------------------------------------------ the world the cases run in


class Ctx:
    """Inputs shared by the cases, made once (lazily where costly)."""

    def __init__(self, base: Path):
        from mixmag.data.check import check_dataset
        from mixmag.data.split import make_split, write_manifest

        self.base = base
        self.pbc = small_pbc(base / "pbc")
        self.manifest = base / "split.csv"
        rep = check_dataset(self.pbc, workers=1, progress=False)
        write_manifest(make_split(rep.files, (0.5, 0.25, 0.25), seed=0), self.manifest, self.pbc, 0,
                       (0.5, 0.25, 0.25))
        self.imgs = base / "imgs"
        self._ck: dict[str, Path] = {}
        self._dataset: Path | None = None

    def pbc_with(self, kind: str) -> Path:
        return pbc_variant(self.pbc, self.base / "pbc-variants" / kind, kind)

    def manifest_with(self, kind: str) -> Path:
        return manifest_variant(self.manifest, self.pbc, self.base / "manifests", kind)

    def image(self, kind: str) -> Path:
        return write_image(kind, self.imgs / kind)

    def folder_with(self, kind: str) -> Path:
        """A folder holding one good image and one of ``kind``."""
        d = self.base / "mixed" / kind
        if not d.exists():
            write_image(kind, d)
            write_image("cmyk", d)
        return d

    def nucleus_json(self) -> Path:
        """A valid native-nucleus file (every class 0.05), so zoom settings are what is judged."""
        p = self.base / "nucleus" / "shares.json"  # not where --weights ck/good.pt would find it
        if not p.exists():
            p.parent.mkdir(parents=True, exist_ok=True)
            from mixmag.classes import CLASS_NAMES
            from mixmag.classify.zoom import FORMAT

            p.write_text(json.dumps({"format": FORMAT, "native_share": {c: 0.05 for c in CLASS_NAMES}}))
        return p

    def single_cell_table(self) -> Path:
        """A valid single-cell table for `report --single-cell` (the output is what is judged)."""
        p = self.base / "single-cell.csv"
        if not p.exists():
            from mixmag.classes import CLASS_NAMES

            rows = [f"img{i}.jpg,{c},{c}" for i, c in enumerate(CLASS_NAMES * 2)]
            p.write_text("image,true_class,pred_class\n" + "\n".join(rows) + "\n")
        return p

    def checkpoint(self, kind: str = "good") -> Path:
        if kind not in self._ck:
            self._ck[kind] = make_checkpoint(self.base / "ck" / f"{kind}.pt", kind)
        return self._ck[kind]

    def dataset(self) -> Path:
        """A tiny generated dataset (6 composites of 256 px)."""
        if self._dataset is None:
            out = self.base / "mix"
            code = main(["synthesize", "--split", str(self.manifest), "--out", str(out), "--n", "6",
                         "--canvas", "256", "--cells", "1", "2", "--mag", "0.5", "--workers", "1",
                         "--no-progress", "--cache", str(self.base / "cache")])
            assert code == 0
            self._dataset = out
        return self._dataset


def make_checkpoint(path: Path, kind: str) -> Path:
    """A tiny microcellnet classifier checkpoint (random weights) or a broken variant of one."""
    import torch

    from mixmag.classes import CLASS_NAMES
    from mixmag.classify.checkpoint import FORMAT, save_checkpoint
    from mixmag.classify.registry import get_backbone

    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "pickle-bomb":
        marker = path.with_suffix(".ran")

        class Payload:
            def __reduce__(self):
                return (exec, (f"open({str(marker)!r}, 'w').write('code ran')",))

        torch.save({"format": FORMAT, "payload": Payload()}, path)
        return path
    if kind == "not-a-checkpoint":
        path.write_text("this is not a checkpoint\n")
        return path
    names = list(CLASS_NAMES)[:3] if kind == "3-classes" else list(CLASS_NAMES)
    torch.manual_seed(0)
    b = get_backbone("microcellnet")
    model, _ = b.build(len(names), pretrained=False)
    save_checkpoint(path, model, backbone="microcellnet", class_names=names, input_size=64,
                    mean=b.mean, std=b.std, manifest_hash="test", train_scale=(1, 1),
                    args={}, metrics={})
    if kind == "unknown-backbone":
        ck = torch.load(path, weights_only=True)
        ck["backbone"] = "alexnet_9000"
        torch.save(ck, path)
    return path


def crafted_detector(path: Path, where: str = "extra") -> Path:
    """A file shaped like an ultralytics checkpoint whose unpickling would run code: it writes
    ``path.with_suffix('.ran')``. ``where``: the payload beside the model (``extra``) or as the
    model itself (``model``)."""
    import torch

    marker = path.with_suffix(".ran")

    class Payload:
        def __reduce__(self):
            return (exec, (f"open({str(marker)!r}, 'w').write('code ran')",))

    path.parent.mkdir(parents=True, exist_ok=True)
    ck = {"date": "2026-12-04", "version": "8.4.0", "epoch": 3, "model": None, "ema": None,
          "train_args": {"imgsz": 640, "data": "x.yaml", "epochs": 9}}
    ck["model" if where == "model" else "extra"] = Payload()
    torch.save(ck, path)
    return path


def no_code_ran(path: Path):
    """A case check: the crafted file's marker was never written."""
    return lambda c, o, t: not path.with_suffix(".ran").exists()


@pytest.fixture(scope="module")
def ctx(tmp_path_factory) -> Ctx:
    return Ctx(tmp_path_factory.mktemp("bad-inputs"))


@pytest.fixture(autouse=True)
def _cached_detector(monkeypatch):
    """Load the default detector once for all predict/export cases (it is read-only)."""
    from mixmag.detect import detector as det

    cache = _cached_detector.cache
    orig = det.load_detector

    def load(path, device="cpu"):
        key = (str(path), device)
        if str(path) != str(DETECTOR):
            return orig(path, device)
        if key not in cache:
            cache[key] = orig(path, device)
        return cache[key]

    monkeypatch.setattr(det, "load_detector", load)
    yield
    _heal_logging()


def _heal_logging():
    """Streams a test's capture closed: log handlers bound to them go back to the real stderr,
    and progress bars an error left open are silenced, so nothing writes to them later."""
    import logging

    from tqdm import tqdm

    for bar in list(getattr(tqdm, "_instances", [])):
        bar.disable = True
    for lg in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
        for h in getattr(lg, "handlers", []):
            stream = getattr(h, "stream", None)
            if stream is not None and getattr(stream, "closed", False):
                h.stream = sys.__stderr__


_cached_detector.cache = {}


def needs_detector():
    if not DETECTOR.is_file():
        pytest.skip(f"default detector {DETECTOR} absent")


# ------------------------------------------------------------------ the table


@dataclass
class Case:
    id: str
    argv: Callable[[Ctx, Path], list]   # (ctx, out) -> argv; out: where the command writes
    expect: str                         # error | skip | ok
    pattern: str                        # regex the error line / warning must match
    out: str = "dir"                    # dir | file | none: what --out (or the run folder) is
    detector: bool = False
    check: Callable | None = None       # extra assertions for ok/skip: (ctx, out, text)
    tags: tuple = field(default_factory=tuple)


CASES: list[Case] = []


def case(*a, **k) -> None:
    CASES.append(Case(*a, **k))


def _s(*parts) -> list[str]:
    return [str(p) for p in parts]


SYN = ["--n", "8", "--canvas", "256", "--cells", "2", "2", "--workers", "1", "--no-progress"]
TC = ["--backbone", "microcellnet", "--imgsz", "64", "--epochs", "1", "--batch", "8", "--no-test"]


def _run_dir(out: Path) -> list[str]:
    return ["--project", str(out.parent), "--name", out.name]


def _bad_pattern(kind: str, fname: bool = True) -> str:
    name, why = BAD_IMAGES[kind]
    return (re.escape(name) + ".*" if fname else "") + f"({why})"


# --- images, against every command that reads images ---------------------------------------
# "tiny" (6 x 6 px) cannot be a PBC source (data, split, synthesize, train), but classify and
# predict take images of any size (a 0.5x platelet crop is ~15 px): there it must simply work
SOURCE_ONLY = {"tiny"}
for kind in BAD_IMAGES:
    name = BAD_IMAGES[kind][0]
    case(f"data-check/{kind}", lambda c, o, k=kind: ["data", "check", "--pbc", c.pbc_with(k),
                                                    "--workers", "1"],
         "skip", rf"basophil/{re.escape(name)}: .*\n.*|unreadable files \(skipped by every command\): 1",
         out="none", check=lambda c, o, t: "unreadable files (skipped by every command): 1" in t)
    case(f"split/{kind}", lambda c, o, k=kind: ["split", "--pbc", c.pbc_with(k), "--out", o,
                                               "--workers", "1"],
         "skip", rf"skipping 1 unreadable files \(first: basophil/{re.escape(name)}",
         out="file", check=lambda c, o, t, n=name: n not in o.read_text())
    case(f"synthesize/manifest-{kind}", lambda c, o, k=kind: ["synthesize", "--split",
                                                             c.manifest_with(k), "--out", o,
                                                             "--cache", c.base / f"cache-{k}", *SYN],
         "error", _bad_pattern(kind))
    case(f"train-classifier/manifest-{kind}",
         lambda c, o, k=kind: ["train-classifier", "--split", c.manifest_with(k), *TC, *_run_dir(o)],
         "error", _bad_pattern(kind))
    if kind in SOURCE_ONLY:
        continue
    case(f"classify/{kind}", lambda c, o, k=kind: ["classify", c.image(k), "--weights",
                                                  c.checkpoint(), "--out", o],
         "error", _bad_pattern(kind), out="file")
    case(f"predict/{kind}", lambda c, o, k=kind: ["predict", c.image(k), "--detector", DETECTOR,
                                                 "--out", o, "--no-progress"],
         "error", _bad_pattern(kind), detector=True)
    case(f"predict/folder-with-{kind}",
         lambda c, o, k=kind: ["predict", c.folder_with(k), "--detector", DETECTOR, "--out", o,
                               "--no-progress", "--no-draw"],
         "skip", r"1 unreadable image", detector=True,
         check=lambda c, o, t, n=name: (n in json.loads((o / "cells.json").read_text()).__repr__()
                                        and len(pd.read_csv(o / "counts.csv")) == 1))
    case(f"export/check-{kind}", lambda c, o, k=kind: ["export", "--detector", DETECTOR, "--out", o,
                                                      "--check", c.image(k)],
         "error", _bad_pattern(kind), detector=True)

for kind in [*ODD_IMAGES, *SOURCE_ONLY]:
    name = ODD_IMAGES.get(kind, "")
    if kind in SOURCE_ONLY:
        case(f"classify/{kind}", lambda c, o, k=kind: ["classify", c.image(k), "--weights",
                                                      c.checkpoint(), "--out", o],
             "ok", r"wrote .* \(1 images\)", out="file")
        case(f"predict/{kind}", lambda c, o, k=kind: ["predict", c.image(k), "--detector", DETECTOR,
                                                     "--out", o, "--no-progress"],
             "ok", r"^1 image\(s\), 0 cell", detector=True)
        continue
    case(f"data-check/{kind}", lambda c, o, k=kind: ["data", "check", "--pbc", c.pbc_with(k),
                                                    "--workers", "1"],
         "ok", r"basophil\s+7\s", out="none",
         check=lambda c, o, t: "unreadable files (skipped by every command): 0" in t)
    case(f"split/{kind}", lambda c, o, k=kind: ["split", "--pbc", c.pbc_with(k), "--out", o,
                                               "--workers", "1"],
         "ok", r"wrote .* \(49 images", out="file",
         check=lambda c, o, t, n=name: f"basophil/{n}" in o.read_text())
    case(f"classify/{kind}", lambda c, o, k=kind: ["classify", c.image(k), "--weights",
                                                  c.checkpoint(), "--out", o],
         "ok", r"wrote .* \(1 images\)", out="file",
         check=lambda c, o, t: len(pd.read_csv(o)) == 1)
    case(f"predict/{kind}", lambda c, o, k=kind: ["predict", c.image(k), "--detector", DETECTOR,
                                                 "--out", o, "--no-progress"],
         "ok", r"^1 image\(s\)", detector=True,
         check=lambda c, o, t: pd.read_csv(o / "counts.csv").shape[0] == 1)

# --- datasets and manifests ----------------------------------------------------------------
case("data-check/empty-dataset", lambda c, o: ["data", "check", "--pbc", c.pbc_with("empty-dataset")],
     "unusable", r"usable: NO", out="none")
case("data-check/missing-classes", lambda c, o: ["data", "check", "--pbc",
                                                 c.pbc_with("missing-classes"), "--workers", "1"],
     "unusable", r"missing class folders: ig, lymphocyte, monocyte, neutrophil, platelet", out="none")
case("data-check/unknown-folder", lambda c, o: ["data", "check", "--pbc",
                                                c.pbc_with("unknown-folder"), "--workers", "1"],
     "skip", r"unknown folders \(ignored\): wolf", out="none")
case("data-check/no-such-folder", lambda c, o: ["data", "check", "--pbc", c.base / "nowhere"],
     "error", r"PBC folder .*nowhere does not exist", out="none")
case("split/empty-dataset", lambda c, o: ["split", "--pbc", c.pbc_with("empty-dataset"), "--out", o],
     "error", r"no readable images", out="file")
case("split/missing-classes", lambda c, o: ["split", "--pbc", c.pbc_with("missing-classes"),
                                            "--out", o, "--workers", "1"],
     "skip", r"missing class folders.*lymphocyte", out="file")
case("split/unknown-folder", lambda c, o: ["split", "--pbc", c.pbc_with("unknown-folder"),
                                           "--out", o, "--workers", "1"],
     "skip", r"unknown folders .*wolf", out="file",
     check=lambda c, o, t: "wolf" not in o.read_text())
case("split/bad-fractions", lambda c, o: ["split", "--pbc", c.pbc, "--out", o, "--fractions",
                                          "0.5", "0.5", "0.5"],
     "error", r"fractions .*summing to 1", out="file")
for k, pat in (("missing-files", r"split-missing-files\.csv names 1 files missing.*-gone\.jpg"),
               ("hash-mismatch", r"split-hash-mismatch\.csv.*hash mismatch")):
    case(f"synthesize/manifest-{k}", lambda c, o, k=k: ["synthesize", "--split", c.manifest_with(k),
                                                       "--out", o, "--cache", c.base / "cache", *SYN],
         "error", pat)
    case(f"train-classifier/manifest-{k}",
         lambda c, o, k=k: ["train-classifier", "--split", c.manifest_with(k), *TC, *_run_dir(o)],
         "error", pat)
    case(f"train-head/manifest-{k}",
         lambda c, o, k=k: ["train-head", "--split", c.manifest_with(k), "--model", c.checkpoint(),
                            "--head", "knn", "--out", o, "--cache", c.base / "feat"],
         "error", pat, out="file")
case("synthesize/no-such-manifest", lambda c, o: ["synthesize", "--split", c.base / "nope.csv",
                                                  "--out", o, *SYN],
     "error", r"split manifest .*nope\.csv does not exist")
case("validate/not-a-dataset", lambda c, o: ["validate", c.base / "imgs"],
     "unusable", r"FAILED: .*violation.*\n.*missing dataset\.json", out="none")

# --- impossible settings -------------------------------------------------------------------
for cid, extra, pat in (
        ("magnification-zero", ["--mag", "0", "1"], r"magnification .*need values in \(0, 8\]"),
        ("magnification-negative-range", ["--mag-range", "-1", "1"], r"magnification"),
        ("canvas-below-one-cell", ["--canvas", "64", "--mag", "3"], r"--canvas 64.*cell"),
        ("cells-zero", ["--cells", "0", "0"], r"--cells 0 0"),
        ("cells-negative", ["--cells", "-2", "3"], r"--cells -2 3"),
        ("overlap-iou-above-1", ["--overlap-iou", "1.5"], r"--overlap-iou 1\.5"),
        ("overlap-iou-negative", ["--overlap-iou", "-0.1"], r"--overlap-iou -0\.1"),
        ("n-zero", ["--n", "0"], r"nothing to make"),
):
    case(f"synthesize/{cid}", lambda c, o, e=extra: ["synthesize", "--split", c.manifest, "--out", o,
                                                    "--cache", c.base / "cache", *SYN, *e],
         "error", pat)
for cid, extra, pat in (
        ("unknown-backbone", ["--backbone", "alexnet_9000"], r"--backbone: invalid choice: 'alexnet_9000'"),
        ("epochs-zero", ["--epochs", "0"], r"--epochs"),
        ("scale-range-negative", ["--scale-range", "-1", "2"], r"--scale-range -1\.0 2\.0"),
        ("ema-above-1", ["--ema", "1.5"], r"--ema 1\.5"),
):
    case(f"train-classifier/{cid}",
         lambda c, o, e=extra: ["train-classifier", "--split", c.manifest, *TC, *e, *_run_dir(o)],
         "error", pat)
case("train-classifier/no-data", lambda c, o: ["train-classifier", *TC, *_run_dir(o)],
     "error", r"no training data")
case("train-classifier/resume-nothing", lambda c, o: ["train-classifier", "--split", c.manifest,
                                                      *TC, *_run_dir(o), "--resume"],
     "error", r"--resume: .*last\.pt does not exist")
for ck, pat in (("3-classes", r"3\.pt: trained for 3 classes"),
                ("unknown-backbone", r"unknown-backbone\.pt: unknown backbone 'alexnet_9000'"),
                ("pickle-bomb", r"pickle-bomb\.pt: not a loadable mixmag checkpoint"),
                ("not-a-checkpoint", r"not-a-checkpoint\.pt: not a loadable mixmag checkpoint")):
    ckpat = pat.replace("3\\.pt", "3-classes\\.pt")
    case(f"classify/checkpoint-{ck}", lambda c, o, k=ck: ["classify", c.image("cmyk"), "--weights",
                                                         c.checkpoint(k), "--out", o],
         "error", ckpat, out="file")
    case(f"predict/classifier-{ck}", lambda c, o, k=ck: ["predict", c.image("cmyk"), "--detector",
                                                        DETECTOR, "--classifier", c.checkpoint(k),
                                                        "--out", o],
         "error", ckpat, detector=True)
    case(f"export/classifier-{ck}", lambda c, o, k=ck: ["export", "--detector", DETECTOR,
                                                       "--classifier", c.checkpoint(k), "--out", o],
         "error", ckpat, detector=True)
    case(f"train-head/model-{ck}", lambda c, o, k=ck: ["train-head", "--split", c.manifest, "--model",
                                                      c.checkpoint(k), "--head", "knn", "--out", o,
                                                      "--cache", c.base / "feat"],
         "error", ckpat, out="file")
for ck, pat in (("3-classes", r"cannot average .*3-classes\.pt with .*: class_names differs"),
                ("unknown-backbone", r"unknown-backbone\.pt: unknown backbone 'alexnet_9000'"),
                ("pickle-bomb", r"pickle-bomb\.pt: not a loadable mixmag checkpoint"),
                ("not-a-checkpoint", r"not-a-checkpoint\.pt: not a loadable mixmag checkpoint")):
    case(f"average-classifiers/{ck}", lambda c, o, k=ck: ["average-classifiers", c.checkpoint(),
                                                         c.checkpoint(k), "--out", o],
         "error", pat, out="file")
case("average-classifiers/one-checkpoint", lambda c, o: ["average-classifiers", c.checkpoint(),
                                                         "--out", o],
     "error", r"needs at least two checkpoints", out="file")
case("average-classifiers/mix-count", lambda c, o: ["average-classifiers", c.checkpoint(),
                                                   c.checkpoint(), "--mix", "1", "--out", o],
     "error", r"--mix: 1 coefficients for 2 checkpoints", out="file")
case("average-classifiers/mix-nan", lambda c, o: ["average-classifiers", c.checkpoint(),
                                                 c.checkpoint(), "--mix", "nan", "1", "--out", o],
     "error", r"--mix nan 1\.0: coefficients must be finite", out="file")
case("classify/tta-sizes-tiny", lambda c, o: ["classify", c.image("cmyk"), "--weights", c.checkpoint(),
                                               "--tta-sizes", "64", "4", "--out", o],
     "error", r"--tta-sizes 64 4: give input sizes of 16-1024 px", out="file")
case("classify/tta-rule-without-sizes", lambda c, o: ["classify", c.image("cmyk"), "--weights",
                                                      c.checkpoint(), "--tta-rule", "max-confidence",
                                                      "--out", o],
     "error", r"--tta-rule max-confidence: needs --tta-sizes", out="file")
case("classify/tta-rule-unknown", lambda c, o: ["classify", c.image("cmyk"), "--weights", c.checkpoint(),
                                                "--tta-sizes", "32", "48", "--tta-rule", "vote",
                                                "--out", o],
     "error", r"--tta-rule vote: expected one of mean, max-confidence", out="file")
case("classify/zoom-without-nucleus-file", lambda c, o: ["classify", c.image("cmyk"), "--weights",
                                                      c.checkpoint(), "--zoom", "--out", o],
     "error", r"--zoom: no nucleus\.json beside .*good\.pt; pass --native-nucleus FILE", out="file")
case("classify/zoom-nucleus-not-json", lambda c, o: ["classify", c.image("cmyk"), "--weights",
                                                     c.checkpoint(), "--zoom", "--native-nucleus",
                                                     c.image("cmyk"), "--out", o],
     "error", r"cannot read native nucleus shares", out="file")
for zid, extra, pat in (("below-above-1", ["--zoom-below", "1.5"], r"--zoom-below 1\.5: expected a magnification in \(0, 1\]"),
                        ("below-word", ["--zoom-below", "low"], r"zoom threshold 'low': expected a magnification"),
                        ("above-nan", ["--zoom-above", "nan"], r"zoom threshold 'nan': expected a magnification"),
                        ("floor-over-below", ["--zoom-below", "0.3"], r"--zoom-floor 0\.35 \(default 0\.35\) must lie in \[0, --zoom-below 0\.3\)")):
    case(f"classify/zoom-{zid}", lambda c, o, e=extra: ["classify", c.image("cmyk"), "--weights", c.checkpoint(),
                                                       "--zoom", "--native-nucleus", c.nucleus_json(), *e, "--out", o],
         "error", pat, out="file")
case("classify/zoom-above-with-no-zoom", lambda c, o: ["classify", c.image("cmyk"), "--weights",
                                                       c.checkpoint(), "--no-zoom", "--zoom-above", "1.3",
                                                       "--out", o],
     "error", r"--native-nucleus / --zoom-below / --zoom-above / --zoom-floor: not with --no-zoom", out="file")
case("classify/zoom-option-without-nucleus-file", lambda c, o: ["classify", c.image("cmyk"), "--weights",
                                                                c.checkpoint(), "--zoom-below", "0.7", "--out", o],
     "error", r"--zoom: no nucleus\.json beside .*good\.pt", out="file")
case("classify/no-such-image", lambda c, o: ["classify", c.base / "ghost.jpg", "--weights",
                                             c.checkpoint(), "--out", o],
     "error", r"ghost\.jpg: no such file", out="file")
for cid, extra, pat in (("iou-above-1", ["--iou", "1.5"], r"--iou 1\.5"),
                        ("iou-negative", ["--iou", "-0.2"], r"--iou -0\.2"),
                        ("conf-above-1", ["--conf", "2"], r"--conf 2"),
                        ("tile-overlap", ["--tile", "256", "--tile-overlap", "300"], r"--tile-overlap 300"),
                        ("batch-zero", ["--batch", "0"], r"--batch 0"),
                        ("drop-inside-above-1", ["--drop-inside", "1.5"], r"--drop-inside 1\.5: a share")):
    case(f"predict/{cid}", lambda c, o, e=extra: ["predict", c.image("cmyk"), "--detector", DETECTOR,
                                                 "--out", o, *e],
         "error", pat, detector=True)
case("predict/models-unknown",
     lambda c, o: ["predict", c.image("cmyk"), "--models", "nope", "--out", o],
     "error", r"--models nope: not a pipeline of the model zoo .*known: default")
case("predict/detector-not-a-model",
     lambda c, o: ["predict", c.image("cmyk"), "--detector", c.checkpoint("not-a-checkpoint"),
                   "--out", o],
     "error", r"not-a-checkpoint\.pt")
# --- a detector file that would run code when unpickled: refused before anything in it runs
EVIL = Path(__import__("tempfile").mkdtemp(prefix="mixmag-crafted-"))  # the markers' home
for where in ("extra", "model"):
    evil = EVIL / f"evil-{where}.pt"
    for cid, argv in (
            ("predict-pytorch", lambda c, o, e=evil, w=where: ["predict", c.image("cmyk"), "--detector",
                                                          crafted_detector(e, w), "--backend",
                                                          "pytorch", "--out", o]),
            ("predict-onnx", lambda c, o, e=evil, w=where: ["predict", c.image("cmyk"), "--detector",
                                                       crafted_detector(e, w), "--backend", "onnx",
                                                       "--out", o]),
            ("export", lambda c, o, e=evil, w=where: ["export", "--detector", crafted_detector(e, w),
                                                 "--out", o]),
            ("train-detector-finetune", lambda c, o, e=evil, w=where: [
                "train-detector", "--data", c.dataset() / "data.yaml", "--model",
                crafted_detector(e, w), "--device", "cpu", *_run_dir(o)])):
        case(f"{cid.split('-')[0] if cid != 'train-detector-finetune' else 'train-detector'}"
             f"/crafted-detector-{where}-{cid}", argv, "error",
             r"evil-\w+\.pt: refused: the file asks to run or build exec,",
             check=no_code_ran(evil))


def _evil_resume(c, o):
    """An interrupted run whose last.pt is a crafted file."""
    run = c.base / "evil-runs" / "run"
    crafted_detector(run / "weights" / "last.pt")
    return ["train-detector", "--data", c.dataset() / "data.yaml", "--resume", "--project",
            run.parent, "--name", run.name]


case("train-detector/crafted-last-pt-resume", _evil_resume, "error",
     r"--resume .*last\.pt: refused: the file asks to run or build exec,", out="none",
     check=lambda c, o, t: not (c.base / "evil-runs" / "run" / "weights" / "last.ran").exists())
# --- malformed sidecars and model files beside exported ONNX models
def _onnx_pair(c, name: str, onnx: bytes, meta) -> Path:
    d = c.base / "onnx" / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "model.onnx").write_bytes(onnx)
    (d / "model.json").write_text(meta if isinstance(meta, str) else json.dumps(meta))
    return d / "model.onnx"


for cid, flag, onnx, meta, pat in (
        ("garbage-detector-onnx", "--detector", b"not an onnx graph", {"names": {"0": "cell"}, "imgsz": 64},
         r"--detector .*model\.onnx: ONNX Runtime cannot load it"),
        ("bad-detector-json", "--detector", b"x", "{not json", r"--detector .*model\.json: not readable JSON"),
        ("detector-json-no-names", "--detector", b"x", {"imgsz": 64}, r"model\.json: lacks names"),
        ("classifier-json-no-class-names", "--classifier", b"x", {"input_size": 64},
         r"--classifier .*model\.json: lacks class_names")):
    case(f"predict/{cid}", lambda c, o, n=cid, f=flag, x=onnx, m=meta: [
        "predict", c.image("cmyk"), *(["--detector", DETECTOR] if f == "--classifier" else []),
        f, _onnx_pair(c, n, x, m), "--out", o], "error", pat, detector=flag == "--classifier")


def _native_list(c, o):
    p = c.base / "native-list.json"
    p.write_text("[1, 2, 3]")
    return ["predict", c.image("cmyk"), "--detector", DETECTOR, "--native-sizes", p, "--out", o]


case("predict/native-sizes-json-list", _native_list, "error", r"native-list\.json: not a mixmag-native-sizes",
     detector=True)
case("predict/coco-gt-a-folder", lambda c, o: ["predict", c.image("cmyk"), "--detector", DETECTOR,
                                               "--coco-gt", c.base, "--out", o],
     "error", r"--coco-gt .*: not a file", detector=True)


# --- outputs the file system cannot take: one line naming the path, nothing half-written
def _a_file(c) -> Path:
    f = c.base / "a-regular-file"
    f.write_text("not a folder\n")
    return f


for cmd, argv in (("predict", lambda c, out: ["predict", c.image("cmyk"), "--detector", DETECTOR,
                                              "--out", out]),
                  ("synthesize", lambda c, out: ["synthesize", "--split", c.manifest, "--out", out,
                                                 "--cache", c.base / "cache-fs", *SYN]),
                  ("classify", lambda c, out: ["classify", c.image("cmyk"), "--weights",
                                               c.checkpoint(), "--out", out]),
                  ("report", lambda c, out: ["report", "--single-cell", c.single_cell_table(),
                                             "--bootstrap", "0", "--out", out])):
    case(f"{cmd}/out-under-a-file", lambda c, o, a=argv: a(c, _a_file(c) / "sub"), "error",
         r"a-regular-file is a file, not a folder", out="none", detector=cmd == "predict")
for cmd, argv in (("predict", lambda c, out: ["predict", c.image("cmyk"), "--detector", DETECTOR,
                                              "--out", out, "--overwrite"]),
                  ("report", lambda c, out: ["report", "--single-cell", c.single_cell_table(),
                                             "--bootstrap", "0", "--out", out, "--overwrite"])):
    case(f"{cmd}/out-an-existing-file-overwrite", lambda c, o, a=argv: a(c, _a_file(c)), "error",
         r"a-regular-file: a file, where the \w+ folder goes", out="none",
         detector=cmd == "predict",
         check=lambda c, o, t: (c.base / "a-regular-file").read_text() == "not a folder\n")
case("predict/no-such-source", lambda c, o: ["predict", c.base / "ghost", "--detector", DETECTOR,
                                             "--out", o],
     "error", r"ghost: no such file", detector=True)
case("export/no-such-detector", lambda c, o: ["export", "--detector", c.base / "ghost.pt", "--out", o],
     "error", r"ghost\.pt")
for cid, extra, pat in (("no-data-yaml", ["--data", "{base}/ghost.yaml"], r"--data .*ghost\.yaml: no such file"),
                        ("data-yaml-invalid", ["--data", "{bad_yaml}"], r"--data .*bad\.yaml"),
                        ("data-yaml-no-folder", ["--data", "{nofolder_yaml}"], r"does not exist"),
                        ("model-missing", ["--data", "{data_yaml}", "--model", "{base}/ghost.yaml"],
                         r"--model .*ghost\.yaml: no such file"),
                        ("epochs-zero", ["--data", "{data_yaml}", "--epochs", "0"], r"--epochs 0"),
                        ("imgsz-zero", ["--data", "{data_yaml}", "--imgsz", "0"], r"--imgsz 0"),
                        ("batch-zero", ["--data", "{data_yaml}", "--batch", "0"], r"--batch 0"),
                        ("bad-set", ["--data", "{data_yaml}", "--set", "scale"], r"--set scale")):
    def _td(c, o, e=extra):
        base = c.base / "yaml"
        base.mkdir(exist_ok=True)
        (base / "bad.yaml").write_text("train: [unclosed\n")
        (base / "nofolder.yaml").write_text(f"path: {base}/none\ntrain: images/train\nval: images/val\n"
                                            "names: {0: cell}\n")
        fill = {"base": c.base, "bad_yaml": base / "bad.yaml", "nofolder_yaml": base / "nofolder.yaml",
                "data_yaml": (c.dataset() / "data.yaml") if "{data_yaml}" in e else ""}
        return ["train-detector", *[a.format(**fill) for a in e], "--device", "cpu", *_run_dir(o)]
    case(f"train-detector/{cid}", _td, "error", pat)
case("train-detector/several-gpus",
     lambda c, o: ["train-detector", "--data", c.dataset() / "data.yaml", *_run_dir(o),
                   "--device", "0,1"],
     "error", r"--device 0,1: 2 GPUs asked, \d+ visible here")


# ------------------------------------------------------------------ running a case


def snapshot(path: Path) -> dict[str, str]:
    if path.is_file():
        return {path.name: hashlib.sha256(path.read_bytes()).hexdigest()}
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


_BAR = re.compile(r"\d+%\||\[\d\d:\d\d|[?\d.]+(it|img|batch|src|s)/s")


def message_lines(err: str) -> list[str]:
    """stderr without progress-bar refreshes (tqdm draws on stderr; a bar is not a message)."""
    return [ln for ln in err.splitlines() if ln.strip() and not _BAR.search(ln)]


def run_cli(argv) -> int:
    try:
        return main([str(a) for a in argv])
    except SystemExit as e:       # argparse errors
        return int(e.code or 0)


@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_bad_input(c: Case, ctx: Ctx, tmp_path, capsys, caplog):
    if c.detector:
        needs_detector()
    FAILED.add(c.id)
    out = tmp_path / ("out.csv" if c.out == "file" else "out")
    argv = [str(a) for a in c.argv(ctx, out)]
    if c.expect == "error":
        # the output exists, and --overwrite is given: only the bad input may stop the command,
        # and it must stop it before anything of the old output changes
        if c.out == "file":
            out.write_text("an earlier result\n")
        else:
            out.mkdir()
            (out / "keep.txt").write_text("an earlier result\n")
            (out / "weights").mkdir()
            (out / "weights" / "last.txt").write_text("kept\n")
        if "--overwrite" not in argv and c.out != "none" and "--resume" not in argv:
            argv.append("--overwrite")
        before = snapshot(out) if c.out != "none" else {}
    capsys.readouterr()
    code = run_cli(argv)
    cap = capsys.readouterr()
    err, text = cap.err.strip(), cap.out + cap.err + caplog.text
    assert "Traceback" not in text, text
    if c.expect == "error":
        assert code == 2, f"exit {code}\n{text}"
        lines = message_lines(err)
        if "invalid choice" not in err:                     # argparse prints usage first
            assert len(lines) == 1, f"stderr is not one line:\n{err}"
        assert re.search(c.pattern, lines[-1]), f"{c.pattern!r} not in {lines[-1]!r}"
        assert lines[-1].startswith(f"mixmag {argv[0]}"), lines[-1]
        if c.out != "none":
            assert snapshot(out) == before, "the output changed"
        if c.check is not None:
            assert c.check(ctx, out, text), text
    elif c.expect == "unusable":     # a check that ran and found the input unusable
        assert code == 1, f"exit {code}\n{text}"
        assert re.search(c.pattern, text), text
    else:
        assert code == 0, f"exit {code}\n{text}"
        assert re.search(c.pattern, text, re.M), f"{c.pattern!r} not in\n{text}"
        if c.check is not None:
            assert c.check(ctx, out, text), text
    FAILED.discard(c.id)
    HANDLED[c.id] = True


# ------------------------------------------------------------------ the report's cases, reused

from test_report_io import _bad_cases, ds  # noqa: E402,F401  (their table and fixture)


def test_report_bad_inputs_leave_an_existing_report_alone(ds, tmp_path, capsys):
    """tests/test_report_io.py's bad report inputs, here against an existing report folder with
    --overwrite: refused with one line, and the old report untouched."""
    cases = _bad_cases(ds, tmp_path)
    FAILED.update(f"report/{n}" for n, _, _ in cases)
    for name, argv, words in cases:
        out = tmp_path / "out" / name.replace(" ", "_")
        out.mkdir(parents=True)
        (out / "report.html").write_text("an earlier report")
        before = snapshot(out)
        code = run_cli(["report", *map(str, argv), "--out", str(out), "--overwrite"])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, (name, err)
        assert all(w in err for w in words), (name, err)
        assert snapshot(out) == before, name
        FAILED.discard(f"report/{name}")
        HANDLED[f"report/{name}"] = True


# ------------------------------------------------------------------ no traceback, for real


SUBPROCESS = ["classify/truncated", "synthesize/cells-zero", "split/empty-dataset"]


@pytest.mark.parametrize("cid", SUBPROCESS)
def test_no_traceback_reaches_a_real_terminal(cid, ctx, tmp_path):
    """A few cases through a real `python -m mixmag` process: stderr ends in the one error line
    (logging lines may come first) and holds no traceback."""
    c = next(x for x in CASES if x.id == cid)
    if c.detector:
        needs_detector()
    out = tmp_path / ("out.csv" if c.out == "file" else "out")
    argv = [str(a) for a in c.argv(ctx, out)]
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1",
           "YOLO_CONFIG_DIR": str(REPO / "runs" / ".ultralytics"), "YOLO_OFFLINE": "1"}
    r = subprocess.run([sys.executable, "-m", "mixmag", *argv], capture_output=True, text=True,
                       env=env, cwd=REPO, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout, r.stderr
    last = message_lines(r.stderr)[-1]
    assert last.startswith(f"mixmag {argv[0]}: error: ") and re.search(c.pattern, last), last


def summary_line() -> str | None:
    """For the conftest.py hook: how many case × command pairs ran and passed."""
    if not HANDLED:
        return None
    ok = sum(HANDLED.values())
    if ok == len(HANDLED) and not FAILED:
        return f"{ok} bad inputs × commands, all handled"
    return f"{ok} of {ok + len(FAILED)} bad inputs × commands handled"


FAILED: set[str] = set()
