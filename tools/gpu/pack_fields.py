"""Carry real PBC fields and their OI-PBC labels to a GPU machine, and lay them out there.

The device sees only the repository and what a call carries (64 MiB in all, the repository's ~31 MB
included), never ../shared. ``pack`` (here) stores a seeded subset of the manifest's train and val
fields as WebP (~5.7 KB a field at quality 70) with each field's OI-PBC label lines in one .npz
under an ignored folder; the labels travel for that call only and are never committed. ``unpack``
(on the device) writes them back as a PBC-style folder of PNGs, an OI-PBC-style labels/ folder and
a manifest of just those fields (its own sha256s), so `mixmag fields` builds mosaics there exactly
as it does here. Fields are chosen from a fixed shuffle, so a smaller subset is a prefix of a
larger one. The test split is never packed.

    python tools/gpu/pack_fields.py pack --split datasets/pbc-split.csv --train 4800 --val 600 \
        --out .bundle-real/fields.npz                                       # here: ~31 MB
    python tools/gpu/pack_fields.py unpack .bundle-real/fields.npz --out /tmp/mixmag-real/src
        # -> src/pbc/<class>/<name>.png, src/oi/labels/<name>.txt, src/manifest.csv
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from mixmag.data.oipbc import find_labels, label_file  # noqa: E402
from mixmag.data.split import load_manifest  # noqa: E402
from mixmag.fileio import atomic_path  # noqa: E402
from mixmag.images import read_image  # noqa: E402

FORMAT = "mixmag-field-bundle/1"


def pack(args) -> None:
    m = load_manifest(args.split)
    labels = find_labels(args.labels)
    parts = []
    for split, n in (("train", args.train), ("val", args.val)):
        rows = m[m["split"] == split].sample(frac=1, random_state=args.seed)
        rows = rows[[label_file(labels, p).is_file() for p in rows["path"]]]
        parts.append(rows.iloc[:n])
    rows = pd.concat(parts, ignore_index=True)
    blobs, lines = [], []
    for r in rows.itertuples(index=False):
        ok, buf = cv2.imencode(".webp", read_image(r.abspath), [cv2.IMWRITE_WEBP_QUALITY, args.quality])
        if not ok:
            raise SystemExit(f"{r.abspath}: WebP encoding failed")
        blobs.append(buf.tobytes())
        lines.append(label_file(labels, r.path).read_text())
    offsets = np.zeros(len(blobs) + 1, np.int64)
    offsets[1:] = np.cumsum([len(b) for b in blobs])
    meta = {"manifest": str(args.split), "manifest_hash": m.attrs.get("manifest_hash", ""),
            "quality": args.quality, "seed": args.seed,
            "counts": rows.groupby("split").size().to_dict()}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out, suffix=".npz") as tmp:
        np.savez_compressed(tmp, format=np.array(FORMAT), data=np.frombuffer(b"".join(blobs), np.uint8),
                 offsets=offsets, paths=rows["path"].to_numpy(str),
                 class_names=rows["class_name"].to_numpy(str), splits=rows["split"].to_numpy(str),
                 labels=np.array(lines, dtype=object).astype(str), meta=np.array(json.dumps(meta)))
    print(f"wrote {out}: {meta['counts']} fields, {out.stat().st_size / 2**20:.1f} MiB")


def unpack(args) -> None:
    out = Path(args.out)
    with np.load(args.bundle) as z:
        if str(z["format"]) != FORMAT:
            raise SystemExit(f"{args.bundle}: not a field bundle ({FORMAT})")
        data, off = z["data"], z["offsets"]
        paths, classes, splits, labels = z["paths"], z["class_names"], z["splits"], z["labels"]
    (out / "oi" / "labels").mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (p, c, s, lab) in enumerate(zip(paths, classes, splits, labels)):
        img = cv2.imdecode(data[off[i]:off[i + 1]], cv2.IMREAD_COLOR)
        rel = str(Path(p).with_suffix(".png"))
        dst = out / "pbc" / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        ok, png = cv2.imencode(".png", img)
        dst.write_bytes(png.tobytes())
        (out / "oi" / "labels" / (Path(p).stem + ".txt")).write_text(str(lab))
        rows.append({"path": rel, "class_name": str(c), "split": str(s),
                     "sha256": hashlib.sha256(png.tobytes()).hexdigest(),
                     "width": img.shape[1], "height": img.shape[0]})
    pd.DataFrame(rows).to_csv(out / "manifest.csv", index=False)
    (out / "manifest.json").write_text(json.dumps({"pbc_root": str((out / "pbc").resolve())}))
    print(f"unpacked {len(rows)} fields to {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack")
    p.add_argument("--split", required=True, help="the manifest (datasets/pbc-split.csv)")
    p.add_argument("--labels", default=None, help="OI-PBC folder (default: $MIXMAG_OI_PBC, ../shared)")
    p.add_argument("--train", type=int, default=4800)
    p.add_argument("--val", type=int, default=600)
    p.add_argument("--quality", type=int, default=70)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    u = sub.add_parser("unpack")
    u.add_argument("bundle")
    u.add_argument("--out", required=True)
    args = ap.parse_args()
    pack(args) if args.cmd == "pack" else unpack(args)


if __name__ == "__main__":
    main()
