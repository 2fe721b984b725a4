"""Subcommands: train-classifier, classify, native-nucleus, pack-bundle, pack-crops, features,
train-head, average-classifiers, adapt-classifier."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    from ..classify.registry import BACKBONES

    t = sub.add_parser("train-classifier", help="fine-tune a single-cell classifier (runs/classify/NAME)")
    t.add_argument("--split", help="split manifest CSV (images read from the PBC folder)")
    t.add_argument("--bundle", help="or a bundle .npz from `mixmag pack-bundle` (no PBC folder needed)")
    t.add_argument("--pbc", help="PBC folder, if not where the manifest says")
    t.add_argument("--backbone", choices=sorted(BACKBONES),
                   help="default efficientnet_lite0, or the --init checkpoint's")
    t.add_argument("--weights", help="ImageNet weights file for the backbone (resnet50: torchvision .pth)")
    t.add_argument("--init", dest="init_from", metavar="CKPT",
                   help="start from this zoo classifier (`mixmag models`) or classifier checkpoint (same backbone and classes; "
                        "its mean/std are kept, and its input size unless --imgsz names another)")
    t.add_argument("--no-pretrained", dest="pretrained", action="store_false",
                   help="random initialisation even where ImageNet weights exist")
    t.add_argument("--imgsz", type=int, help="network input, pixels (square; default 160, or the "
                   "--init checkpoint's)")
    t.add_argument("--store-size", type=int, help="resize manifest images to this before augmenting "
                   "(default: --imgsz; a bundle fixes its own)")
    t.add_argument("--epochs", type=int, default=30)
    t.add_argument("--batch", type=int, default=64)
    t.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (AdamW, one-cycle cosine)")
    t.add_argument("--weight-decay", type=float, default=0.05)
    t.add_argument("--warmup", type=float, default=0.1, help="fraction of steps warming up")
    t.add_argument("--label-smoothing", type=float, nargs="?", const=0.1, default=0.0,
                   help="cross-entropy label smoothing (flag alone: 0.1)")
    t.add_argument("--class-weights", action="store_true", help="inverse-frequency class weights")
    g = t.add_mutually_exclusive_group()
    g.add_argument("--train-fraction", type=float, help="use this fraction of each class's train images")
    g.add_argument("--per-class", type=int, help="use this many train images a class")
    t.add_argument("--scale-range", type=float, nargs=2, default=(0.5, 1.5), metavar=("LOW", "HIGH"),
                   help="random in-canvas rescale of the cell (1 1: none)")
    t.add_argument("--scale-p", type=float, default=1.0,
                   help="fraction of training images rescaled (rest stay native)")
    t.add_argument("--freeze-stages", type=int, default=0,
                   help="efficientnet: keep the stem and the first N of 7 stages frozen (faster on CPU)")
    t.add_argument("--no-colour", dest="colour", action="store_false", help="no colour/blur jitter")
    t.add_argument("--augment", default="mild", choices=["mild", "smear"],
                   help="mild: colour jitter that keeps granule colours; smear: also H&E stain, "
                        "gamma, blur, resolution loss and JPEG, for another lab's smears "
                        "(mixmag.synth.shifts.smear_augmentations)")
    t.add_argument("--patience", type=int, default=10, help="early stop after this many epochs without gain")
    t.add_argument("--ema", type=float, default=0.0, help="weight EMA decay, e.g. 0.998 (0: off)")
    t.add_argument("--tta", action="store_true",
                   help="score (and later classify) with the 8 flips/rotations averaged")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    t.add_argument("--amp", action="store_true", help="bf16 autocast (cuda only)")
    t.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    t.add_argument("--project", default="runs/classify")
    t.add_argument("--name", default="exp")
    t.add_argument("--no-test", dest="eval_test", action="store_false",
                   help="do not score the manifest's test split at the end")
    t.add_argument("--resume", action="store_true", help="continue runs/classify/NAME from last.pt")
    t.add_argument("--overwrite", action="store_true")
    t.set_defaults(func=_train)

    c = sub.add_parser("classify", help="class and probabilities for single-cell images")
    c.add_argument("images", nargs="+", help="image files or folders")
    c.add_argument("--weights", required=True, help="a zoo classifier (`mixmag models`) or a checkpoint (best.pt)")
    c.add_argument("--out", help="write a CSV here (else print a table)")
    c.add_argument("--device", default="cpu")
    c.add_argument("--batch", type=int, default=64)
    c.add_argument("--tta-sizes", type=int, nargs="+", metavar="PX",
                   help="average over these input sizes, e.g. 224 256 (the checkpoint's own size "
                        "and a larger one: small cells get more pixels; docs/classify.md)")
    c.add_argument("--tta-rule", default=None, metavar="RULE",
                   help="how --tta-sizes are combined: mean (default) or max-confidence (per image, "
                        "the size whose top probability is highest)")
    z = c.add_mutually_exclusive_group()
    z.add_argument("--zoom", dest="zoom", action="store_true", default=None,
                   help="scale normalisation: estimate each cell's magnification from its nucleus "
                        "and classify far-from-native cells again, zoomed to native size (columns "
                        "magnification_est, zoomed; docs/classify.md). Default: on where "
                        "nucleus.json sits beside --weights (the released Lite2-224), else off")
    z.add_argument("--no-zoom", dest="zoom", action="store_false", help="never zoom")
    c.add_argument("--zoom-below", default=None, metavar="M|off",
                   help="with --zoom: zoom in on cells estimated below this magnification "
                        "(default 0.75)")
    c.add_argument("--zoom-above", default=None, metavar="M|off",
                   help="with --zoom: also zoom out of cells estimated above this (default off)")
    c.add_argument("--zoom-floor", type=float, default=None, metavar="M",
                   help="with --zoom: estimates below this are taken as failed, no zoom (default 0.35)")
    c.add_argument("--native-nucleus", metavar="FILE",
                   help="with --zoom: native nucleus shares (default: nucleus.json beside --weights)")
    c.add_argument("--overwrite", action="store_true")
    c.set_defaults(func=_classify)

    n = sub.add_parser("native-nucleus", help="median nucleus share per class of a manifest's train "
                       "images (nucleus.json, for `mixmag classify --zoom`)")
    n.add_argument("--split", required=True, help="split manifest CSV")
    n.add_argument("--pbc", help="PBC folder, if not where the manifest says")
    n.add_argument("--out", required=True, help="JSON to write (put it beside the classifier's best.pt)")
    n.add_argument("--part", default="train", choices=("train", "val"),
                   help="which split's images (never test)")
    n.add_argument("--overwrite", action="store_true")
    n.set_defaults(func=_native_nucleus)

    p = sub.add_parser("pack-bundle", help="pre-resized, encoded images of a manifest in one .npz")
    p.add_argument("--split", required=True, help="split manifest CSV")
    p.add_argument("--pbc", help="PBC folder, if not where the manifest says")
    p.add_argument("--out", required=True, help=".npz to write")
    p.add_argument("--size", type=int, default=160)
    p.add_argument("--quality", type=int, default=90)
    p.add_argument("--format", default="webp", choices=("webp", "jpeg"))
    p.add_argument("--splits", nargs="+", default=["train", "val"], choices=("train", "val", "test"))
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=_pack)

    f = sub.add_parser("features", help="pooled backbone features for a manifest or bundle (cached)")
    _feature_args(f)
    f.set_defaults(func=_features)

    h = sub.add_parser("train-head", help="SVM / XGBoost / KNN / RF / logistic regression on features")
    _feature_args(h)
    h.add_argument("--head", required=True, choices=("svm", "xgb", "knn", "rf", "logreg"))
    h.add_argument("--out", required=True, help="head file to write (.joblib)")
    h.add_argument("--train-fraction", type=float)
    h.add_argument("--per-class", type=int)
    h.add_argument("--overwrite", action="store_true")
    h.set_defaults(func=_train_head)

    a = sub.add_parser("average-classifiers",
                       help="one checkpoint whose weights are the mean of several (a model soup)")
    a.add_argument("checkpoints", nargs="+", help="classifier checkpoints fine-tuned one from another "
                   "(same backbone, classes, input size, mean/std)")
    a.add_argument("--out", required=True, help="checkpoint to write (.pt)")
    a.add_argument("--mix", type=float, nargs="+", metavar="C",
                   help="one averaging coefficient a checkpoint (default: equal)")
    a.add_argument("--half", action="store_true", help="store fp16 weights (half the size)")
    a.add_argument("--overwrite", action="store_true")
    a.set_defaults(func=_average)


def _feature_args(f) -> None:
    from ..classify.registry import BACKBONES

    f.add_argument("--split", help="split manifest CSV")
    f.add_argument("--bundle", help="or a bundle .npz")
    f.add_argument("--pbc")
    src = f.add_mutually_exclusive_group()
    src.add_argument("--backbone", choices=sorted(BACKBONES), default="efficientnet_lite0",
                     help="ImageNet backbone (default)")
    src.add_argument("--model", help="or a fine-tuned classifier checkpoint (best.pt)")
    f.add_argument("--weights", help="ImageNet weights file (resnet50)")
    f.add_argument("--imgsz", type=int, default=None, help="input size (default: the model's)")
    f.add_argument("--cache", default="runs/features", help="feature cache folder")
    f.add_argument("--device", default="cpu")
    f.add_argument("--batch", type=int, default=64)
    f.add_argument("--workers", type=int, default=0)
    f.add_argument("--seed", type=int, default=0)


def _train(args: argparse.Namespace) -> int:
    from . import config_from_args
    from ..classify.train import TrainConfig, train_classifier

    cfg = config_from_args(TrainConfig, args)
    cfg.scale_range = tuple(cfg.scale_range)
    cfg.progress = True
    train_classifier(cfg)
    return 0


def _classify(args: argparse.Namespace) -> int:
    from ..classify.predict import classify_files

    df, zoom = classify_files(
        args.images, args.weights, device=args.device, batch=args.batch, tta_sizes=args.tta_sizes,
        tta_rule=args.tta_rule, zoom=args.zoom, zoom_below=args.zoom_below,
        zoom_above=args.zoom_above, zoom_floor=args.zoom_floor,
        native_nucleus=args.native_nucleus, out=args.out, overwrite=args.overwrite)
    if args.out:
        print(f"wrote {args.out} ({len(df)} images)")
    else:
        cols = ["image", "class_name", "class_conf"] + (["magnification_est", "zoomed"] if zoom else [])
        print(df[cols].to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    return 0


def _native_nucleus(args: argparse.Namespace) -> int:
    from ..classify.zoom import native_nucleus_of_split

    data = native_nucleus_of_split(args.split, args.out, pbc=args.pbc, part=args.part,
                                   overwrite=args.overwrite)
    print(f"wrote {args.out}: " + ", ".join(f"{c} {v:.4f}" for c, v in data["native_share"].items())
          + f" ({data['no_stain']} images without a central stain)")
    return 0


def _average(args: argparse.Namespace) -> int:
    from ..classify.average import write_average

    size = write_average(args.checkpoints, args.out, args.mix, args.overwrite, args.half)
    print(f"wrote {args.out} ({size / 1e6:.1f} MB): the mean of {len(args.checkpoints)} checkpoints; "
          "score it before quoting figures")
    return 0


def _pack(args: argparse.Namespace) -> int:
    from ..data.split import load_manifest
    from ..fileio import prepare_output
    from ..classify.bundle import pack

    prepare_output(args.out, args.overwrite, "bundle")
    m = load_manifest(args.split, pbc=args.pbc)
    s = pack(m, args.out, size=args.size, splits=tuple(args.splits), quality=args.quality,
             fmt=args.format, workers=args.workers, overwrite=args.overwrite)
    print(f"wrote {s['path']}: {s['images']} images {s['splits']}, {s['bytes'] / 1e6:.1f} MB, "
          f"{s['kb_per_image']} KB/image ({s['size']} px {s['format']} q{s['quality']})")
    return 0


def _features(args: argparse.Namespace) -> int:
    from ..classify.features import compute_features

    fs = compute_features(**_feature_kwargs(args))
    print(f"features {fs.X.shape} ({fs.source}); cached at {fs.cache_path}")
    return 0


def _feature_kwargs(args) -> dict:
    return dict(split=args.split, bundle=args.bundle, pbc=args.pbc,
                backbone=None if args.model else args.backbone, model=args.model,
                weights=args.weights, imgsz=args.imgsz, cache=args.cache, device=args.device,
                batch=args.batch, workers=args.workers)


def _train_head(args: argparse.Namespace) -> int:
    from ..fileio import prepare_output
    from ..classify.features import compute_features
    from ..classify.heads import fit_head, save_head

    prepare_output(args.out, args.overwrite, "head")
    fs = compute_features(**_feature_kwargs(args))
    head = fit_head(fs, args.head, train_fraction=args.train_fraction, per_class=args.per_class,
                    seed=args.seed)
    save_head(head, args.out)
    print(f"wrote {args.out}: {args.head} {head.params} val acc {head.val_metrics['accuracy']:.2%}"
          + (f", test acc {head.test_metrics['accuracy']:.2%}" if head.test_metrics else ""))
    return 0
