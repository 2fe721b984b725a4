"""Subcommands: data check, data download, split."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser("data", help="inspect or download the PBC dataset")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    c = dsub.add_parser("check", help="counts per class, sizes, unreadable files, duplicates")
    c.add_argument("--pbc", help="PBC folder (default: $MIXMAG_PBC, then ../shared/data/pbc)")
    c.add_argument("--workers", type=int, default=0)
    c.add_argument("--csv", help="also write the per-file table here")
    c.add_argument("--overwrite", action="store_true")
    c.set_defaults(func=_check)

    d = dsub.add_parser("download", help="fetch the official archive, verify, unpack atomically")
    d.add_argument("--to", required=True, help="folder to create")
    d.add_argument("--url", default=None, help="archive URL (default: Mendeley Data)")
    d.add_argument("--archive", help="use this local zip instead of downloading")
    d.add_argument("--sha256", help="expected archive checksum")
    d.add_argument("--overwrite", action="store_true")
    d.set_defaults(func=_download)

    s = sub.add_parser("split", help="seeded stratified train/val/test split of source images")
    s.add_argument("--pbc", help="PBC folder (default: $MIXMAG_PBC, then ../shared/data/pbc)")
    s.add_argument("--out", required=True, help="manifest CSV to write (a .json sidecar goes beside)")
    s.add_argument("--fractions", type=float, nargs=3, default=(0.70, 0.15, 0.15),
                   metavar=("TRAIN", "VAL", "TEST"))
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--workers", type=int, default=0)
    s.add_argument("--overwrite", action="store_true")
    s.set_defaults(func=_split)


def _check(args: argparse.Namespace) -> int:
    from ..fileio import prepare_output, write_csv
    from ..data.check import check_dataset
    from ..data.scan import find_pbc_root

    if args.csv:
        prepare_output(args.csv, args.overwrite, "table")
    report = check_dataset(find_pbc_root(args.pbc), workers=args.workers)
    print(report.render())
    if args.csv:
        write_csv(args.csv, report.files)
    return 0 if report.usable else 1


def _download(args: argparse.Namespace) -> int:
    from ..data.download import OFFICIAL_URL, download_pbc

    out = download_pbc(args.to, url=args.url or OFFICIAL_URL, archive=args.archive,
                       sha256=args.sha256, overwrite=args.overwrite)
    print(f"PBC dataset unpacked to {out}; check it with `mixmag data check --pbc {out}`")
    return 0


def _split(args: argparse.Namespace) -> int:
    from ..data.split import split_dataset

    manifest, meta, warnings = split_dataset(args.out, pbc=args.pbc, fractions=args.fractions,
                                             seed=args.seed, workers=args.workers,
                                             overwrite=args.overwrite)
    for w in warnings:
        print(w)
    counts = manifest.groupby(["split"]).size()
    print(f"wrote {args.out} ({len(manifest)} images: " +
          ", ".join(f"{s} {counts.get(s, 0)}" for s in ("train", "val", "test")) +
          f"; manifest hash {meta['manifest_hash']})")
    return 0
