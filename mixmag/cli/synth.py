"""Subcommands: synthesize, validate, pack-cutouts."""

from __future__ import annotations

import argparse

from ..synth.mask import MASK_VERSION, MASK_VERSIONS

MASK_HELP = ("cell-mask algorithm: m5 (keeps the pale cytoplasm of neutrophils and IG; the same "
             "mask every run) or m4 (the default until 2026-11-27, for older datasets; its GrabCut depends on "
             "OpenCV's RNG state, so a fresh cache can differ from the old one by a few pixels)")


def register(sub) -> None:
    p = sub.add_parser("synthesize", help="make mixed-magnification composites with exact labels",
                       description="Paste segmented PBC cells at mixed magnification onto smear-like "
                                   "backgrounds; write images, YOLO labels, COCO JSON, cells.csv.")
    src = p.add_argument_group("sources (one of)")
    src.add_argument("--split", help="split manifest CSV from `mixmag split` (needs the PBC folder)")
    src.add_argument("--cutouts", help="cut-out bundle .npz from `mixmag pack-cutouts` (no PBC needed)")
    p.add_argument("--pbc", help="PBC folder (default: manifest's sidecar, $MIXMAG_PBC, ../shared/data/pbc)")
    p.add_argument("--out", required=True, help="dataset folder to create, e.g. datasets/mix-v1")
    p.add_argument("--n", type=int, default=2000, help="composites in all, shared 70/15/15 (default 2000)")
    p.add_argument("--n-train", type=int)
    p.add_argument("--n-val", type=int)
    p.add_argument("--n-test", type=int)
    p.add_argument("--splits", nargs="+", default=["train", "val", "test"],
                   choices=["train", "val", "test"])
    p.add_argument("--canvas", type=int, default=1024, help="square canvas side, px (default 1024)")
    p.add_argument("--cells", type=int, nargs=2, default=(4, 12), metavar=("MIN", "MAX"))
    g = p.add_mutually_exclusive_group()
    g.add_argument("--mag", type=float, nargs="+", help="discrete magnifications (default 0.5 1.0 1.5)")
    g.add_argument("--mag-range", type=float, nargs=2, metavar=("LO", "HI"),
                   help="continuous magnification range instead")
    p.add_argument("--overlap-iou", type=float, default=0.0,
                   help="largest IoU allowed between two cell boxes (default 0: no overlap)")
    p.add_argument("--balance", choices=["equal", "natural"], default="equal")
    p.add_argument("--box", choices=["tight", "crop"], default="tight",
                   help="tight: box of the pasted cell mask; crop: the whole pasted rectangle")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jpeg-quality", type=int, default=92)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--cache", help="mask cache folder (default $MIXMAG_CACHE, else .cache beside --out)")
    p.add_argument("--mask-version", choices=MASK_VERSIONS, help=MASK_HELP + " (default "
                   f"{MASK_VERSION}; a --cutouts bundle carries its own)")
    p.add_argument("--mask-check", action="store_true",
                   help="leave out cut-outs whose mask OI-PBC disputes (a touching red cell, a "
                        "platelet or a second cell inside it; docs/synth.md); needs --split")
    p.add_argument("--labels", help="OI-PBC folder for --mask-check (default: $MIXMAG_OI_PBC, "
                                    "../shared/data/oi-pbc)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--preview", action="store_true", help="also write preview.png (boxes drawn)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_synthesize)

    v = sub.add_parser("validate", help="check every invariant of a synthetic dataset from its files")
    v.add_argument("dataset")
    v.add_argument("--split", help="manifest to check split hygiene against (default: records only)")
    v.add_argument("--pbc")
    v.add_argument("--balance-tol", type=float, default=0.02,
                   help="largest deviation of a class' share from 1/8 under equal balance")
    v.add_argument("--stain-images", type=int, default=50,
                   help="images checked for unlabelled stained blobs (0 = all)")
    v.set_defaults(func=_validate)

    k = sub.add_parser("pack-cutouts", help="bundle cell cut-outs (crop JPEG + alpha PNG) into one .npz")
    k.add_argument("--split", required=True, help="split manifest CSV")
    k.add_argument("--pbc")
    k.add_argument("--out", required=True, help="bundle .npz to write")
    k.add_argument("--splits", nargs="+", default=["train", "val", "test"],
                   choices=["train", "val", "test"])
    k.add_argument("--max-per-class", type=int)
    k.add_argument("--seed", type=int, default=0)
    k.add_argument("--workers", type=int, default=2)
    k.add_argument("--cache")
    k.add_argument("--mask-version", choices=MASK_VERSIONS, default=MASK_VERSION,
                   help=MASK_HELP + f" (default {MASK_VERSION})")
    k.add_argument("--overwrite", action="store_true")
    k.set_defaults(func=_pack)
    register_fields(sub)


def register_fields(sub) -> None:
    f = sub.add_parser("fields", help="real PBC fields with a box on every cell (OI-PBC labels), "
                       "at 1x and rescaled",
                       description="Whole PBC images of a manifest's splits, each with every "
                       "cell boxed (white cells, platelets, red cells as class rbc, cells cut by "
                       "the edge), written with synthesize's contracts (images, YOLO + data.yaml, "
                       "COCO, cells.csv). The labels are read from --labels, $MIXMAG_OI_PBC or "
                       "../shared/data/oi-pbc and never copied.")
    f.add_argument("--split", required=True, help="split manifest CSV (datasets/pbc-split.csv)")
    f.add_argument("--out", required=True, help="dataset folder to write, e.g. datasets/fields-val")
    f.add_argument("--pbc", help="PBC folder, if not where the manifest says")
    f.add_argument("--labels", help="OI-PBC folder (holding labels/NAME.txt)")
    f.add_argument("--splits", nargs="+", default=["val"], choices=("train", "val", "test"),
                   help="manifest splits to write (default val)")
    f.add_argument("--scales", type=float, nargs="+", default=[1.0], metavar="M",
                   help="write each image at each of these magnifications (default 1)")
    f.add_argument("--max-images", type=int, help="first N labelled images of each split")
    f.add_argument("--mosaics", type=int, default=0, metavar="N",
                   help="write N real mosaics a split instead: whole fields at magnifications "
                        "drawn from --scales, packed on one canvas")
    f.add_argument("--canvas", type=int, default=1024, help="mosaic side in px (default 1024)")
    f.add_argument("--per-mosaic", type=int, nargs=2, default=[4, 9], metavar=("LOW", "HIGH"),
                   help="fields a mosaic (as many as fit; default 4 9)")
    f.add_argument("--seed", type=int, default=0, help="mosaics' draw")
    f.add_argument("--layout", default="packed", choices=("packed", "smear"),
                   help="mosaics: 'packed' whole fields on grey (default), or 'smear': fields edge "
                        "to edge at one magnification a canvas, cut by the canvas edge")
    f.add_argument("--paste", type=int, nargs=2, default=[0, 0], metavar=("LOW", "HIGH"),
                   help="smear canvases: paste LOW-HIGH cut-out cells of the same split a canvas, "
                        "touching the real cells, hiding the red cells under them (default 0 0)")
    f.add_argument("--clumps", type=float, default=0.3,
                   help="share of pasted platelets that come as a clump of 2-5 (default 0.3)")
    f.add_argument("--cache", help="cut-out cache for --paste (default: beside --out, .cache)")
    f.add_argument("--mask-version", choices=("m4", "m5"), help="cut-out masks for --paste "
                   "(default: the generator's)")
    f.add_argument("--shift", help="a named stain/optics shift applied to every image (another "
                   "lab's smear, defined in advance: mixmag.synth.shifts.SHIFTS)")
    f.add_argument("--no-progress", action="store_true")
    f.add_argument("--overwrite", action="store_true")
    f.set_defaults(func=_fields)


def _fields(args: argparse.Namespace) -> int:
    from ..synth.fields import FieldSettings, fields_dataset

    s = FieldSettings(splits=tuple(args.splits), scales=tuple(args.scales),
                      max_images=args.max_images, mosaics=args.mosaics, canvas=args.canvas,
                      per_mosaic=tuple(args.per_mosaic), seed=args.seed, shift=args.shift,
                      layout=args.layout, paste=tuple(args.paste), clumps=args.clumps,
                      cache=args.cache, mask_version=args.mask_version)
    meta = fields_dataset(args.out, args.split, pbc=args.pbc, labels=args.labels, settings=s,
                          overwrite=args.overwrite, progress=not args.no_progress)
    c, a = meta["counts"], meta["oi_pbc_agreement"]
    per = {sp: sum(v.values()) for sp, v in c["cells"].items()}
    print(f"wrote {args.out}: " + ", ".join(f"{sp} {n} images ({per.get(sp, 0)} cells)"
                                          for sp, n in c["images"].items())
          + f"; {c['cut_cells']} cells cut by the edge; {c['unlabelled_sources_skipped']} sources "
          f"without labels skipped; OI-PBC's centre box agrees with the PBC folder in "
          f"{a['agreement']:.2%} of {a['centre_box']} images")
    return 0


def settings_from_args(args: argparse.Namespace):
    from ..synth.generate import SynthSettings
    from ..synth.plan import split_counts

    counts = split_counts(args.n, tuple(args.splits),
                          explicit={"train": args.n_train, "val": args.n_val, "test": args.n_test})
    return SynthSettings(
        n=args.n, counts=counts, splits=tuple(args.splits), canvas=args.canvas,
        cells=tuple(args.cells), mags=args.mag if args.mag else (None if args.mag_range else [0.5, 1.0, 1.5]),
        mag_range=list(args.mag_range) if args.mag_range else None, max_iou=args.overlap_iou,
        balance=args.balance, box=args.box, seed=args.seed, jpeg_quality=args.jpeg_quality)


def _labels(args: argparse.Namespace):
    from ..data.oipbc import find_labels

    return find_labels(args.labels)


def _synthesize(args: argparse.Namespace) -> int:
    from ..synth.generate import synthesize_dataset

    meta = synthesize_dataset(args.out, settings_from_args(args), split=args.split, pbc=args.pbc,
                              cutouts=args.cutouts, cache=args.cache, workers=args.workers,
                              resume=args.resume, overwrite=args.overwrite, preview=args.preview,
                              progress=not args.no_progress, mask_version=args.mask_version,
                              mask_check=_labels(args) if args.mask_check else None)
    c = meta["counts"]
    print(f"wrote {args.out}: " + ", ".join(f"{k} {v} images" for k, v in c["images"].items())
          + f"; {c['cells_placed']} cells ({c['cells_planned'] - c['cells_placed']} did not fit, "
          f"{meta['canvases_full']['images']} canvases full); "
          f"{meta['source_masks']['fallback_masks']} of {meta['source_masks']['sources_used']} "
          "source masks are fallbacks")
    if args.preview:
        print(f"preview: {args.out}/preview.png")
    return 0


def _validate(args: argparse.Namespace) -> int:
    from ..synth.validate import validate_dataset

    rep = validate_dataset(args.dataset, manifest=args.split, pbc=args.pbc,
                           balance_tol=args.balance_tol, stain_images=args.stain_images)
    print(rep.render())
    return 0 if rep.ok else 1


def _pack(args: argparse.Namespace) -> int:
    from ..synth.cutout import pack_cutouts_of_split

    info = pack_cutouts_of_split(args.split, args.out, pbc=args.pbc, splits=args.splits,
                                 max_per_class=args.max_per_class, cache=args.cache,
                                 workers=args.workers, seed=args.seed,
                                 mask_version=args.mask_version, overwrite=args.overwrite)
    print(f"wrote {args.out}: {info['n']} {args.mask_version} cut-outs, {info['bytes'] / 1e6:.1f} MB "
          f"({info['bytes_per_1000'] / 1e6:.2f} MB per 1,000), {info['fallbacks']} fallback masks")
    return 0
