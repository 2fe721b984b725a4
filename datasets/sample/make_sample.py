"""Pick the demo sample: a few PBC images a class, TEST split only, copied byte for byte.

    python datasets/sample/make_sample.py --out datasets/sample [--pbc DIR] [--per-class 10] [--seed 0]

Writes OUT/pbc/<class>/<file>.jpg (the same relative paths as datasets/pbc-split.csv, so every PBC
loader reads it) and OUT/pbc-split.csv (the committed manifest's own rows for those files, all
split=test). The choice depends on the committed manifest and the seed only: within each class, the
test rows of distinct content are ranked by sha256("mixmag-sample:<seed>:<path>") and the first
--per-class are taken; no library's random generator is involved, so any machine picks the same files.
Every copy is checked against the manifest's sha256; the whole sample must stay under --max-bytes.

    python datasets/sample/make_sample.py --check datasets/sample     # verify a sample in place
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MANIFEST = REPO / "datasets" / "pbc-split.csv"
CLASS_NAMES = ("basophil", "eosinophil", "erythroblast", "ig",
               "lymphocyte", "monocyte", "neutrophil", "platelet")   # mixmag.classes order
PER_CLASS = 10
MAX_BYTES = 2_000_000


def _read(manifest: Path) -> tuple[str, list[tuple[dict, str]]]:
    """The header line and each row as (fields, its exact line) of a manifest CSV."""
    lines = manifest.read_text().splitlines()
    header = lines[0]
    rows = [(r, line) for r, line in zip(csv.DictReader(lines), lines[1:])]
    return header, rows


def _rank(seed: int, path: str) -> str:
    return hashlib.sha256(f"mixmag-sample:{seed}:{path}".encode()).hexdigest()


def choose(manifest: Path = MANIFEST, per_class: int = PER_CLASS, seed: int = 0) -> list[tuple[dict, str]]:
    """The sampled rows (fields, exact manifest line), in manifest order (class, then path)."""
    _, rows = _read(manifest)
    picked = set()
    for c in CLASS_NAMES:
        test = [r for r, _ in rows if r["split"] == "test" and r["class_name"] == c]
        seen, pool = set(), []
        for r in sorted(test, key=lambda r: _rank(seed, r["path"])):
            if r["sha256"] not in seen:          # a byte-identical duplicate adds nothing
                seen.add(r["sha256"])
                pool.append(r["path"])
        if len(pool) < per_class:
            raise SystemExit(f"make_sample: {c} has only {len(pool)} distinct test images")
        picked.update(pool[:per_class])
    return [(r, line) for r, line in rows if r["path"] in picked]


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def check(out: Path, manifest: Path = MANIFEST, min_per_class: int = 8,
          max_bytes: int = MAX_BYTES) -> list[str]:
    """Problems with the sample at ``out`` (empty when it is sound)."""
    problems = []
    committed = {r["path"]: line for r, line in _read(manifest)[1]}
    sample_csv = out / "pbc-split.csv"
    if not sample_csv.is_file():
        return [f"{sample_csv} is missing"]
    _, rows = _read(sample_csv)
    per = {c: 0 for c in CLASS_NAMES}
    total = 0
    for r, line in rows:
        if committed.get(r["path"]) != line:
            problems.append(f"{r['path']}: not the committed manifest's row")
        if r["split"] != "test":
            problems.append(f"{r['path']}: split {r['split']}, not test")
        f = out / "pbc" / r["path"]
        if not f.is_file():
            problems.append(f"{f} is missing")
            continue
        if _sha(f) != r["sha256"]:
            problems.append(f"{f}: sha256 differs from the manifest")
        per[r["class_name"]] = per.get(r["class_name"], 0) + 1
        total += f.stat().st_size
    listed = {r["path"] for r, _ in rows}
    extra = [str(p.relative_to(out / "pbc")) for p in sorted((out / "pbc").rglob("*"))
             if p.is_file() and str(p.relative_to(out / "pbc")) not in listed]
    problems += [f"{p}: in the folder but not in {sample_csv.name}" for p in extra]
    problems += [f"{c}: {n} images, need {min_per_class}" for c, n in per.items() if n < min_per_class]
    if total > max_bytes:
        problems.append(f"{total:,} bytes, above {max_bytes:,}")
    return problems


def make(out: Path, pbc: Path, manifest: Path = MANIFEST, per_class: int = PER_CLASS, seed: int = 0,
         max_bytes: int = MAX_BYTES, overwrite: bool = False) -> int:
    """Copy the sample to ``out``; returns its size in bytes."""
    header, _ = _read(manifest)
    rows = choose(manifest, per_class, seed)
    dest, sample_csv = out / "pbc", out / "pbc-split.csv"
    if dest.exists() or sample_csv.exists():
        if not overwrite:
            raise SystemExit(f"make_sample: {dest} exists; pass --overwrite")
        shutil.rmtree(dest, ignore_errors=True)
        sample_csv.unlink(missing_ok=True)
    total = 0
    for r, _ in rows:
        src, dst = pbc / r["path"], dest / r["path"]
        if _sha(src) != r["sha256"]:
            raise SystemExit(f"make_sample: {src} differs from the manifest (sha256); wrong dataset?")
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        if _sha(dst) != r["sha256"]:
            raise SystemExit(f"make_sample: copy {dst} differs from its source")
        total += dst.stat().st_size
    if total > max_bytes:
        shutil.rmtree(dest)
        raise SystemExit(f"make_sample: {total:,} bytes is above {max_bytes:,}; lower --per-class")
    sample_csv.write_text("\n".join([header] + [line for _, line in rows]) + "\n")
    return total


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="folder to write pbc/ and pbc-split.csv into")
    ap.add_argument("--check", type=Path, metavar="DIR", help="verify the sample in DIR instead")
    ap.add_argument("--pbc", help="the full PBC folder (default: $MIXMAG_PBC, then ../shared/data/pbc)")
    ap.add_argument("--manifest", type=Path, default=MANIFEST)
    ap.add_argument("--per-class", type=int, default=PER_CLASS)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-bytes", type=int, default=MAX_BYTES)
    ap.add_argument("--overwrite", action="store_true")
    a = ap.parse_args(argv)
    if a.check:
        problems = check(a.check, a.manifest, max_bytes=a.max_bytes)
        for p in problems:
            print(f"make_sample: {p}", file=sys.stderr)
        print("sample OK" if not problems else f"{len(problems)} problems")
        return 1 if problems else 0
    if not a.out:
        ap.error("give --out DIR (or --check DIR)")
    sys.path.insert(0, str(REPO))
    from mixmag.data.scan import find_pbc_root

    total = make(a.out, find_pbc_root(a.pbc), a.manifest, a.per_class, a.seed, a.max_bytes, a.overwrite)
    n = sum(1 for _ in (a.out / "pbc").rglob("*.jpg"))
    print(f"wrote {a.out / 'pbc'}: {n} test-split images, {total:,} bytes; {a.out / 'pbc-split.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
