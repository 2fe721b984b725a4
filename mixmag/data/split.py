"""One seeded, stratified split of SOURCE images into train/val/test: the manifest every step reads.

Exact duplicates (same bytes) are kept in one split, so a copy of a test image never trains.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..classes import CLASS_ID, CLASS_NAMES
from ..errors import MixmagError
from ..fileio import prepare_output, write_csv, write_json
from .scan import find_pbc_root

SPLITS = ("train", "val", "test")
MANIFEST_COLUMNS = ["path", "class_name", "class_id", "split", "sha256", "width", "height"]


def make_split(files: pd.DataFrame, fractions=(0.70, 0.15, 0.15), seed: int = 0) -> pd.DataFrame:
    """Assign each readable file a split; stratified per class, duplicates grouped."""
    from sklearn.model_selection import train_test_split

    fr = check_fractions(fractions)
    ok = files[files["ok"]].copy()
    if ok.empty:
        raise MixmagError("no readable images to split")
    # one unit per distinct content, labelled by its first file's class
    groups = ok.groupby("sha256", sort=True).agg(class_id=("class_id", "first")).reset_index()
    test_n = fr[2]
    val_n = fr[1] / max(fr[0] + fr[1], 1e-12)
    strat = groups["class_id"] if groups["class_id"].value_counts().min() >= 3 else None
    try:
        if test_n > 0:
            rest, test = train_test_split(groups, test_size=test_n, random_state=seed, stratify=strat)
        else:
            rest, test = groups, groups.iloc[:0]
        strat2 = rest["class_id"] if strat is not None else None
        if fr[1] > 0:
            train, val = train_test_split(rest, test_size=val_n, random_state=seed + 1, stratify=strat2)
        else:
            train, val = rest, rest.iloc[:0]
    except ValueError as e:   # sklearn: a part too small to hold every class
        raise MixmagError(f"split fractions {tuple(float(f) for f in fr)}: {len(groups)} distinct images "
                          f"in {groups['class_id'].nunique()} classes are too few to stratify "
                          f"({str(e).splitlines()[0]}); add images or raise the val/test fractions") from None
    assign = {h: s for s, part in (("train", train), ("val", val), ("test", test)) for h in part["sha256"]}
    ok["split"] = ok["sha256"].map(assign)
    out = ok[MANIFEST_COLUMNS].sort_values(["split", "class_id", "path"], key=_split_key)
    return out.reset_index(drop=True)


def check_fractions(fractions) -> np.ndarray:
    fr = np.asarray(fractions, dtype=float)
    if fr.shape != (3,) or (fr < 0).any() or abs(fr.sum() - 1) > 1e-6 or fr[0] <= 0:
        raise MixmagError(f"split fractions must be three non-negative numbers summing to 1 "
                          f"with train > 0, got {tuple(fractions)}")
    return fr


def _split_key(col: pd.Series) -> pd.Series:
    return col.map({s: i for i, s in enumerate(SPLITS)}) if col.name == "split" else col


def manifest_hash(manifest: pd.DataFrame) -> str:
    """Content hash of a manifest (paths, classes, splits, file hashes): names a split exactly."""
    h = hashlib.sha256()
    for row in manifest[["path", "class_id", "split", "sha256"]].itertuples(index=False):
        h.update(("\t".join(map(str, row)) + "\n").encode())
    return h.hexdigest()[:16]


def write_manifest(manifest: pd.DataFrame, out: Path, pbc_root: Path, seed: int, fractions,
                   overwrite: bool = False) -> dict:
    prepare_output(out, overwrite, "split manifest")
    meta = {
        "manifest": out.name,
        "manifest_hash": manifest_hash(manifest),
        "pbc_root": str(pbc_root),
        "seed": seed,
        "fractions": list(fractions),
        "counts": {s: {c: int(n) for c, n in g.groupby("class_name").size().items()}
                   for s, g in manifest.groupby("split")},
    }
    write_csv(out, manifest)
    write_json(out.with_suffix(".json"), meta)
    return meta


def load_manifest(path: str | os.PathLike, pbc: str | os.PathLike | None = None,
                  verify: str = "sample") -> pd.DataFrame:
    """Read a manifest and resolve its files; adds column ``abspath``.

    verify: "none", "exists" (every file exists), "sample" (exists + hashes of 64 files),
    "all" (every hash). A mismatch means the manifest was made from another dataset.
    """
    path = Path(path)
    if not path.is_file():
        raise MixmagError(f"split manifest {path} does not exist; make one with `mixmag split`")
    try:
        m = pd.read_csv(path, dtype={"path": str, "class_name": str, "split": str, "sha256": str})
    except Exception as e:
        raise MixmagError(f"split manifest {path} is not a readable CSV ({type(e).__name__})") from None
    missing_cols = [c for c in ("path", "class_name", "split", "sha256") if c not in m.columns]
    if missing_cols:
        raise MixmagError(f"split manifest {path} lacks columns {missing_cols}; make one with `mixmag split`")
    bad_split = set(m["split"]) - set(SPLITS)
    if bad_split:
        raise MixmagError(f"split manifest {path} has unknown splits {sorted(bad_split)}")
    bad_cls = set(m["class_name"]) - set(CLASS_NAMES)
    if bad_cls:
        raise MixmagError(f"split manifest {path} has unknown classes {sorted(bad_cls)}")
    m["class_id"] = m["class_name"].map(CLASS_ID)
    root = None
    if pbc is None:
        meta_path = path.with_suffix(".json")
        if meta_path.is_file():
            hint = json.loads(meta_path.read_text()).get("pbc_root")
            if hint and Path(hint).is_dir():
                root = Path(hint)
    root = root or find_pbc_root(pbc)
    m["abspath"] = [str(root / p) for p in m["path"]]
    if verify != "none":
        absent = [p for p in m["abspath"] if not os.path.isfile(p)]
        if absent:
            raise MixmagError(
                f"split manifest {path} names {len(absent)} files missing under {root} "
                f"(first: {absent[0]}); was it made for another copy of the dataset? pass --pbc")
    if verify in ("sample", "all"):
        rows = m if verify == "all" else m.sample(min(64, len(m)), random_state=0)
        for p, want in zip(rows["abspath"], rows["sha256"]):
            got = hashlib.sha256(Path(p).read_bytes()).hexdigest()
            if got != want:
                raise MixmagError(
                    f"split manifest {path}: {p} has different content than when the manifest was "
                    "made (hash mismatch); the manifest belongs to another dataset, make a new one")
    m.attrs["manifest_hash"] = manifest_hash(m)
    m.attrs["pbc_root"] = str(root)
    return m


def split_dataset(out: str | os.PathLike, *, pbc=None, fractions=(0.70, 0.15, 0.15), seed: int = 0,
                  workers: int = 2, overwrite: bool = False) -> tuple[pd.DataFrame, dict, list[str]]:
    """``mixmag split``: scan the dataset, split its source images and write the manifest at
    ``out``. Returns (manifest, sidecar metadata, warnings to show)."""
    from ..fileio import prepare_output
    from .check import check_dataset

    out = prepare_output(Path(out), overwrite, "split manifest")
    check_fractions(fractions)   # before the slow scan
    root = find_pbc_root(pbc)
    report = check_dataset(root, workers=workers)
    warnings = []
    if report.missing_classes:
        warnings.append(f"warning: missing class folders: {', '.join(report.missing_classes)} "
                        "(the split holds the other classes only)")
    if report.unknown_folders:
        warnings.append(f"warning: unknown folders (ignored): {', '.join(report.unknown_folders)}")
    if len(report.unreadable):
        warnings.append(f"skipping {len(report.unreadable)} unreadable files (first: "
                        f"{report.unreadable['path'].iloc[0]}: {report.unreadable['error'].iloc[0]})")
    manifest = make_split(report.files, fractions=tuple(fractions), seed=seed)
    meta = write_manifest(manifest, out, root, seed, fractions, overwrite=overwrite)
    return manifest, meta, warnings
