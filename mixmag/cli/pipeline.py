"""Subcommands of the pipeline's training helpers: pack-crops, adapt-classifier."""

from __future__ import annotations

from ..pipeline.crop_bundle import CropSettings, pack_crops
from ..pipeline.crops import CROP_STYLES
from ..classify.bundle import ENCODINGS
from ..fileio import prepare_output
from . import config_from_args


def register(sub) -> None:
    register_pack_crops(sub)
    register_adapt(sub)


def register_pack_crops(sub) -> None:
    p = sub.add_parser("pack-crops", help="a training bundle of the crops predict cuts from a "
                       "dataset's train/val composites or real fields (+ optional PBC images)",
                       description="Crop every train/val cell of a synthesized or real-field dataset "
                       "as `mixmag predict --scale-norm off` does (jittered truth box + margin, "
                       "square, resized) into a bundle for `train-classifier --bundle`. Red cells "
                       "of real fields are left out (a detector that knows them never sends them "
                       "to the classifier). The dataset's test split is never read.")
    p.add_argument("dataset", nargs="+", help="folder written by `mixmag synthesize` or `mixmag "
                                              "fields` (with train and val splits); several: "
                                              "their crops in one bundle (e.g. real fields and composites)")
    p.add_argument("--out", required=True, help=".npz bundle to write")
    p.add_argument("--pbc-split", help="also store whole PBC train/val images of this manifest")
    p.add_argument("--pbc", help="PBC folder, if not where the manifest says")
    p.add_argument("--pbc-share", type=float, default=0.3,
                   help="share of each split's images that are PBC images (default 0.3; needs --pbc-split)")
    p.add_argument("--size", type=int, default=160, help="crop side stored = the classifier's input (160)")
    p.add_argument("--margin", type=float, default=0.15, help="predict's box margin (0.15)")
    p.add_argument("--jitter", type=float, default=0.03,
                   help="sd of each box edge, fraction of its side, mimicking detector boxes (0.03)")
    p.add_argument("--copies", type=int, default=1, help="crops per cell, each from its own jittered box")
    p.add_argument("--max-images", type=int, help="first N images of each split of each dataset only")
    p.add_argument("--quality", type=int, default=90)
    p.add_argument("--format", dest="fmt", default="webp", choices=sorted(ENCODINGS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=0, help="threads (default min(4, CPUs))")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=_pack_crops)


def _pack_crops(args) -> int:
    s = config_from_args(CropSettings, args)
    prepare_output(args.out, args.overwrite, "bundle")
    r = pack_crops(args.dataset, args.out, s, pbc_split=args.pbc_split, pbc=args.pbc,
                   workers=args.workers, overwrite=args.overwrite, progress=args.progress)
    print(f"wrote {r['path']}: {r['images']} images {r['counts']} from {r['composites']} images, "
          f"{r['bytes'] / 1e6:.1f} MB, {r['kb_per_image']} KB/image ({r['size']} px {r['fmt']} "
          f"q{r['quality']}, jitter {r['jitter']}, margin {r['margin']})")
    return 0


def register_adapt(sub) -> None:
    a = sub.add_parser("adapt-classifier", help="refit a classifier's last layer on pipeline-style "
                       "crops of train composites (runs/classify/NAME)")
    a.add_argument("--weights", required=True, help="base classifier checkpoint (best.pt)")
    a.add_argument("--dataset", required=True, help="composites from `mixmag synthesize` with train "
                   "and val splits (its test split is never read)")
    a.add_argument("--out", required=True, help="run folder to write, e.g. runs/classify/NAME")
    a.add_argument("--pbc-split", help="also fit on the manifest's PBC train crops (val crops help "
                   "choose C), so the PBC domain is kept")
    a.add_argument("--pbc", help="PBC folder, if not where the manifest says")
    a.add_argument("--pbc-share", type=float, default=0.3,
                   help="share of the total sample weight given to PBC crops (default 0.3)")
    a.add_argument("--native-sizes", help="magnification.json (beside the detector) or a cells.csv; "
                   "default: the dataset's train cells")
    a.add_argument("--modes", nargs="+", default=list(CROP_STYLES), choices=CROP_STYLES,
                   help="crop styles: scale (predict --scale-norm on) and/or plain (off)")
    a.add_argument("--jitter", type=float, default=0.03, help="box-edge jitter, fraction of the side")
    a.add_argument("--default-mag-p", type=float, default=0.25,
                   help="share of scale-norm crops sized by the all-class median native size")
    a.add_argument("--max-train-images", type=int, help="use only the first N train composites")
    a.add_argument("--max-val-images", type=int, help="use only the first N val composites")
    a.add_argument("--pbc-per-class", type=int, help="sample this many PBC crops a class and split")
    a.add_argument("--grid", type=float, nargs="+", default=[0.03, 0.1, 0.3, 1.0],
                   help="logistic-regression C values tried (chosen on val)")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--batch", type=int, default=64)
    a.add_argument("--cache", default="runs/features", help="feature cache folder")
    a.add_argument("--device", default="cpu")
    a.add_argument("--no-progress", dest="progress", action="store_false")
    a.add_argument("--overwrite", action="store_true")
    a.set_defaults(func=_adapt)


def _adapt(args) -> int:
    from ..pipeline.adapt import AdaptConfig, adapt_classifier  # PyTorch: imported when used

    cfg = config_from_args(AdaptConfig, args)
    cfg.modes, cfg.grid = tuple(cfg.modes), tuple(cfg.grid)
    r = adapt_classifier(cfg)
    b, a = r["base"]["composite_val"], r["adapted"]["composite_val"]
    line = (f"wrote {r['weights']} (C={r['C']}, {r['train_crops']} composite crops"
            f"{', %d PBC crops' % r['pbc_train_crops'] if r['pbc_train_crops'] else ''}, "
            f"{r['seconds']:.0f} s): val composite crops acc {b['accuracy']:.2%} -> {a['accuracy']:.2%}, "
            f"macro F1 {b['macro_f1']:.2%} -> {a['macro_f1']:.2%}")
    if "pbc_val" in r["adapted"]:
        line += (f"; val PBC acc {r['base']['pbc_val']['accuracy']:.2%} -> "
                 f"{r['adapted']['pbc_val']['accuracy']:.2%}")
    print(line)
    return 0
