"""Fine-tune (or train from scratch) a single-cell classifier; runs are written like ultralytics'.

runs/classify/NAME/
  weights/best.pt, weights/last.pt   checkpoints (docs/CONTRACTS.md); last.pt also holds the state to --resume
  args.yaml                          every setting of the run
  results.csv                        one row an epoch: train loss, val loss/accuracy/macro F1, lr, seconds
  confusion_matrix.png               best model on val (and confusion_matrix_test.png on test, if present)
  metrics.json                       best model's figures on val and test, init, timing

Several processes (``torchrun --nproc_per_node N -m mixmag train-classifier ...``; one per GPU, or
gloo on CPUs) train one model with DistributedDataParallel: ``--batch`` stays the global batch,
split evenly; each process draws its share of every epoch (DistributedSampler); process 0 alone
scores val, keeps the best epoch, writes every file and tells the others when to stop.
"""

from __future__ import annotations

import logging
import math
import os
import platform
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..classes import CLASS_NAMES
from ..errors import MixmagError
from ..fileio import prepare_output, write_csv, write_json, write_text
from .augment import EvalTransform, seed_transform, train_transform
from .checkpoint import save_checkpoint
from .data import CellDataset, make_loader, open_source, seed_everything, subset_indices, to_input
from .metrics import classification_metrics, save_confusion_png, summary_line
from .registry import get_backbone
from .tta import dihedral_probs

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    split: str | None = None
    bundle: str | None = None
    pbc: str | None = None
    backbone: str | None = None  # None: efficientnet_lite0, or the --init checkpoint's
    weights: str | None = None
    pretrained: bool = True
    init_from: str | None = None  # --init: a mixmag classifier checkpoint to start from
    imgsz: int | None = None  # None: 160, or the --init checkpoint's input size
    store_size: int | None = None  # manifest images are first resized to this (bundle: its own)
    epochs: int = 30
    batch: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup: float = 0.1  # fraction of steps rising to lr (one-cycle), then cosine down
    label_smoothing: float = 0.0
    class_weights: bool = False
    train_fraction: float | None = None
    per_class: int | None = None
    scale_range: tuple[float, float] = (0.5, 1.5)
    scale_p: float = 1.0  # fraction of training images rescaled (the rest stay at native scale)
    freeze_stages: int = 0  # EfficientNet: keep the stem and this many first stages at ImageNet
    colour: bool = True
    augment: str = "mild"   # mild | smear: mild colour jitter, or also another lab's stain and optics
    patience: int = 10
    ema: float = 0.0  # weight EMA decay (e.g. 0.998); 0 = off. The EMA weights are evaluated and saved
    tta: bool = False  # score with the 8 flips/90-degree rotations averaged (also used at inference)
    seed: int = 0
    device: str = "cpu"
    amp: bool = False
    workers: int = 0
    project: str = "runs/classify"
    name: str = "exp"
    resume: bool = False
    overwrite: bool = False
    eval_test: bool = True
    progress: bool = True
    extra: dict = field(default_factory=dict)


def _device(name: str) -> torch.device:
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise MixmagError(f"--device {name}: CUDA is not available here; use --device cpu")
    if name not in ("cpu", "mps") and not name.startswith("cuda"):
        raise MixmagError(f"--device {name}: use cpu or cuda[:N]")
    return torch.device(name)


@dataclass(frozen=True)
class Dist:
    """This process's place in a torchrun job (rank 0 of 1 when there is none)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def start_dist(device: str) -> Dist:
    """Join torchrun's process group when WORLD_SIZE > 1 (NCCL for CUDA, gloo for CPUs)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if str(device).startswith("cuda") else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def _broadcast(value, d: Dist):
    """Process 0's ``value`` in every process."""
    if d.world == 1:
        return value
    import torch.distributed as dist

    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _class_weights(labels: np.ndarray, n: int) -> torch.Tensor:
    counts = np.bincount(labels, minlength=n).astype(float)
    w = counts.sum() / np.maximum(counts, 1) / n
    return torch.tensor(w, dtype=torch.float32)


@torch.no_grad()
def predict_loader(model, loader, mean, std, device, amp: bool, progress: bool = False, desc="eval",
                   tta: bool = False):
    """(probabilities, labels) for every item of ``loader``."""
    from tqdm import tqdm

    model.eval()
    probs, labels = [], []
    for xb, yb in tqdm(loader, desc=desc, leave=False, disable=not progress):
        x = to_input(xb, mean, std, device, channels_last=device.type == "cuda")
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            p = dihedral_probs(model, x, tta)
        probs.append(p.cpu())
        labels.append(yb)
    return torch.cat(probs).numpy(), torch.cat(labels).numpy()


def freeze_early(model, stages: int) -> list:
    """Freeze an EfficientNet's stem and first ``stages`` stages (CPU recipe: most of the backward
    pass is in these high-resolution layers). Returns the frozen modules."""
    if stages <= 0:
        return []
    if not hasattr(model, "blocks") or not hasattr(model, "conv_stem"):
        raise MixmagError("--freeze-stages works for the efficientnet backbones only")
    if stages > len(model.blocks):
        raise MixmagError(f"--freeze-stages {stages}: the model has {len(model.blocks)} stages")
    frozen = [model.conv_stem, model.bn1, *model.blocks[:stages]]
    for m in frozen:
        for p in m.parameters():
            p.requires_grad_(False)
    return frozen


def one_cycle(steps: int, warmup: float, start: float = 0.04, end: float = 1e-3):
    """LR factor per step: linear warm-up from ``start`` to 1, then cosine down to ``end``."""
    w = max(1, int(round(warmup * steps)))

    def f(step: int) -> float:
        if step < w:
            return start + (1 - start) * step / w
        t = min(1.0, (step - w) / max(1, steps - w))
        return end + (1 - end) * 0.5 * (1 + math.cos(math.pi * t))

    return f


def resolve_init(cfg: TrainConfig) -> tuple[TrainConfig, dict | None]:
    """``cfg`` with backbone and input size filled in, and the ``--init`` checkpoint (or None).

    A run started from a checkpoint must fine-tune the same network for the same classes; anything
    else is refused with a one-line error. It keeps the checkpoint's input size unless ``--imgsz``
    names another: every backbone here pools globally, so the weights fit any size, and fine-tuning
    at a larger one is the FixRes recipe (more pixels for small cells).
    """
    if not cfg.init_from:
        return replace(cfg, backbone=cfg.backbone or "efficientnet_lite0", imgsz=cfg.imgsz or 160), None
    from ..fileio import sha256_file
    from ..zoo import resolve
    from .checkpoint import read_checkpoint

    cfg = replace(cfg, init_from=str(resolve(cfg.init_from, "classify")[0]))  # a zoo name or a path

    if cfg.weights:
        raise MixmagError(f"--init {cfg.init_from} and --weights {cfg.weights}: give one "
                          "(the checkpoint already holds all weights)")
    ck = read_checkpoint(cfg.init_from)  # refuses other classes, unknown backbones, non-checkpoints
    if cfg.backbone and cfg.backbone != ck["backbone"]:
        raise MixmagError(f"--init {cfg.init_from}: a {ck['backbone']} checkpoint, but --backbone "
                          f"is {cfg.backbone}; drop --backbone or pass {ck['backbone']}")
    size = int(ck["input_size"])
    if cfg.imgsz and cfg.imgsz != size:
        log.info("--init %s was trained at %d px; fine-tuning it at --imgsz %d", cfg.init_from, size,
                 cfg.imgsz)
    ck["_summary"] = {"path": str(cfg.init_from), "sha256": sha256_file(cfg.init_from),
                      "backbone": ck["backbone"], "input_size": size, "mean": list(ck["mean"]), "std": list(ck["std"]),
                      "manifest_hash": ck.get("manifest_hash", ""),
                      "init": (ck.get("args") or {}).get("init", "")}
    return replace(cfg, backbone=ck["backbone"], imgsz=cfg.imgsz or size), ck


def _origins(src, rows) -> np.ndarray | None:
    o = getattr(getattr(src, "bundle", None), "origin", None)
    if o is None or set(o) == {"pbc"}:
        return None
    return o[rows]


def origin_accuracy(src, rows, labels, probs) -> dict:
    """Val accuracy of each image origin (composite crops, PBC images) where a bundle mixes them."""
    o = _origins(src, rows)
    if o is None:
        return {}
    pred = probs.argmax(1)
    return {k: float((pred[o == k] == labels[o == k]).mean()) for k in sorted(set(o))}


def split_metrics(src, rows, labels, probs) -> dict:
    """Full metrics per origin, and per magnification of the composite crops (pack-crops bundles)."""
    o = _origins(src, rows)
    if o is None:
        return {}
    pred = probs.argmax(1)
    out = {k: classification_metrics(labels[o == k], pred[o == k]) for k in sorted(set(o))}
    mag = src.bundle.magnification[rows]
    comp = o == "composite"
    for m in sorted(set(np.round(mag[comp], 2))):
        sel = comp & (np.round(mag, 2) == m)
        out[f"composite_m{m:g}"] = classification_metrics(labels[sel], pred[sel])
    return out


def _nll(probs: np.ndarray, labels: np.ndarray) -> float:
    return float(-np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, 1)).mean())


def train_classifier(cfg: TrainConfig, assign=None) -> dict:
    """Train per ``cfg``; returns the metrics dict also written to metrics.json.

    ``assign``: optional array of split names, one per source image, replacing the manifest's
    (the cross-validation protocol uses it to rotate folds).
    """
    from tqdm import tqdm

    cfg, init_ck = resolve_init(cfg)
    b = get_backbone(cfg.backbone)
    # preprocessing travels with the weights: a run started from a checkpoint keeps its mean/std
    mean, std = (init_ck["mean"], init_ck["std"]) if init_ck else (b.mean, b.std)
    if cfg.train_fraction is not None and cfg.per_class is not None:
        raise MixmagError("--train-fraction and --per-class exclude each other; give one")
    lo, hi = cfg.scale_range
    if not 0 < lo <= hi:
        raise MixmagError(f"--scale-range {lo} {hi}: need 0 < low <= high")
    if cfg.epochs < 1 or cfg.batch < 1 or cfg.imgsz < 32 or cfg.lr <= 0:
        raise MixmagError("--epochs/--batch must be >= 1, --imgsz >= 32, --lr > 0")
    run = Path(cfg.project) / cfg.name
    last_pt = run / "weights" / "last.pt"
    dd = start_dist(cfg.device)
    if cfg.batch % dd.world:
        raise MixmagError(f"--batch {cfg.batch}: the global batch must split evenly over "
                          f"{dd.world} processes")
    if cfg.resume:
        if not last_pt.is_file():
            raise MixmagError(f"--resume: {last_pt} does not exist; start the run without --resume")
    elif dd.main:  # the others write nothing
        prepare_output(run, cfg.overwrite, "run")
    if dd.world > 1 and str(cfg.device).startswith("cuda"):
        cfg = replace(cfg, device=f"cuda:{dd.local_rank}")
    device = _device(cfg.device)
    amp = bool(cfg.amp and device.type == "cuda")
    if device.type == "cpu":
        # same seed, same numbers on CPU; on CUDA cudnn autotuning is worth more than bit-equality
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    seed_everything(cfg.seed)

    src = open_source(cfg.split, cfg.bundle, size=cfg.store_size or cfg.imgsz, pbc=cfg.pbc)
    mh = init_ck.get("manifest_hash") if init_ck else ""
    if mh and src.manifest_hash and mh != src.manifest_hash:
        raise MixmagError(f"--init {cfg.init_from}: trained on manifest {mh}, the data comes from "
                          f"manifest {src.manifest_hash}; their splits may overlap, use data made "
                          "from the checkpoint's manifest")
    if assign is not None:
        assign = np.asarray(assign, dtype=str)
        if len(assign) != len(src):
            raise MixmagError(f"split assignment has {len(assign)} entries for {len(src)} images")
        src.splits = assign
    idx = {s: np.flatnonzero(src.splits == s) for s in ("train", "val", "test")}
    if len(idx["train"]) == 0 or len(idx["val"]) == 0:
        raise MixmagError(f"{src.origin}: needs train and val images "
                          f"(has train {len(idx['train'])}, val {len(idx['val'])})")
    idx["train"] = subset_indices(src.labels, idx["train"], cfg.train_fraction, cfg.per_class, cfg.seed)
    n_cls = len(CLASS_NAMES)

    if init_ck:
        from .checkpoint import build_model

        model, init = build_model(init_ck, cfg.init_from), f"checkpoint:{cfg.init_from}"
    else:
        model, init = b.build(n_cls, pretrained=cfg.pretrained, weights=cfg.weights)
    if init == "random" and cfg.backbone != "microcellnet":
        log.warning("%s: RANDOM initialisation (no ImageNet weights used)", cfg.backbone)
    model = model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)

    frozen = freeze_early(model, cfg.freeze_stages)
    train_ds = CellDataset(src, idx["train"],
                           train_transform(cfg.imgsz, cfg.scale_range, cfg.colour, cfg.scale_p,
                                           smear=cfg.augment == "smear"))
    val_ds = CellDataset(src, idx["val"], EvalTransform(cfg.imgsz))
    pin = device.type == "cuda"
    sampler = None
    if dd.world > 1:
        from torch.utils.data.distributed import DistributedSampler

        # every process the same number of steps: an uneven tail would hang the gradient sync
        sampler = DistributedSampler(train_ds, dd.world, dd.rank, shuffle=True, seed=cfg.seed,
                                     drop_last=True)
    per_batch = cfg.batch // dd.world
    train_dl = make_loader(train_ds, per_batch, True, cfg.workers, cfg.seed + dd.rank,
                           drop_last=len(train_ds) > cfg.batch, pin=pin, sampler=sampler)
    val_dl = make_loader(val_ds, max(cfg.batch, 64), False, cfg.workers, cfg.seed, pin=pin)
    steps = len(train_dl) * cfg.epochs
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr,
                            weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, one_cycle(steps, cfg.warmup))
    weight = _class_weights(src.labels[idx["train"]], n_cls).to(device) if cfg.class_weights else None
    loss_fn = nn.CrossEntropyLoss(weight=weight, label_smoothing=cfg.label_smoothing)
    ema = None
    if cfg.ema:
        from timm.utils import ModelEmaV3

        if not 0 < cfg.ema < 1:
            raise MixmagError(f"--ema {cfg.ema}: a decay in (0, 1), e.g. 0.998; 0 turns it off")
        ema = ModelEmaV3(model, decay=cfg.ema, use_warmup=True)

    args = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()}
    if init_ck:
        args["init_checkpoint"] = init_ck["_summary"]
    args.update(init=init, data=src.origin, manifest_hash=src.manifest_hash, stored_size=src.size,
                train_images=int(len(idx["train"])), val_images=int(len(idx["val"])))
    ck_common = dict(backbone=cfg.backbone, class_names=CLASS_NAMES, input_size=cfg.imgsz,
                     mean=mean, std=std, manifest_hash=src.manifest_hash,
                     train_scale=cfg.scale_range, args=args)
    history, start, best, best_epoch, train_seconds = [], 0, (-1.0, math.inf), -1, 0.0
    if cfg.resume:
        ck = torch.load(last_pt, map_location="cpu", weights_only=True)
        st = ck.get("train_state")
        if not st:
            raise MixmagError(f"--resume: {last_pt} holds no training state (was it stripped?)")
        if int(ck.get("input_size", cfg.imgsz)) != cfg.imgsz:
            raise MixmagError(f"--resume: {last_pt} was trained at {int(ck['input_size'])} px, but "
                              f"--imgsz is {cfg.imgsz}; pass --imgsz {int(ck['input_size'])}")
        model.load_state_dict(ck["state_dict"])
        opt.load_state_dict(st["optimizer"])
        if ema is not None and "ema" in st:
            ema.module.load_state_dict(st["ema"])
        sched.load_state_dict(st["scheduler"])
        start, best_epoch = int(st["epoch"]) + 1, int(st["best_epoch"])
        best, history = tuple(st["best"]), list(st["history"])
        train_seconds = float(st.get("train_seconds", 0.0))
        log.info("resuming %s at epoch %d", run, start + 1)
    log.info("%s (%s) on %s: %d train / %d val images from %s, %d px, %d epochs x %d steps",
             cfg.backbone, init, device, len(idx["train"]), len(idx["val"]), src.origin,
             cfg.imgsz, cfg.epochs, len(train_dl))
    net = model  # the network itself: scored, averaged and saved
    if dd.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        # the EMA (made above from the bare network) follows ``net``, not the wrapper
        model = DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)

    for epoch in range(start, cfg.epochs):
        best_epoch = _broadcast(best_epoch, dd)
        if epoch - best_epoch > cfg.patience and best_epoch >= 0:
            log.info("early stop: val accuracy has not improved for %d epochs", cfg.patience)
            break
        if cfg.workers == 0:
            # every epoch's shuffle, augmentation and dropout from (seed, epoch) alone, so that
            # --resume at epoch k continues exactly as the uninterrupted run did
            train_dl.generator.manual_seed(cfg.seed * 100003 + epoch)
            seed_transform(train_ds.transform, cfg.seed * 100003 + epoch + 7919 * dd.rank)
            torch.manual_seed(cfg.seed * 100003 + epoch + 7919 * dd.rank)
        if sampler is not None:
            sampler.set_epoch(epoch)
        model.train()
        for m in frozen:
            m.eval()  # frozen stages keep their ImageNet BatchNorm statistics
        t0, tot, nb = time.perf_counter(), 0.0, 0
        bar = tqdm(train_dl, desc=f"epoch {epoch + 1}/{cfg.epochs}",
                   disable=not (cfg.progress and dd.main), leave=False, unit="batch")
        for xb, yb in bar:
            x = to_input(xb, mean, std, device, channels_last=device.type == "cuda")
            y = yb.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                loss = loss_fn(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if ema is not None:
                ema.update(net, step=epoch * len(train_dl) + nb)
            tot, nb = tot + loss.item(), nb + 1
            if nb % 10 == 0 or nb == len(train_dl):
                bar.set_postfix(loss=f"{tot / nb:.3f}")
        bar.close()
        train_s = time.perf_counter() - t0
        train_seconds += train_s
        if not dd.main:
            continue  # process 0 scores, keeps and writes; the next epoch starts from its word
        scored = ema.module if ema is not None else net
        probs, labels = predict_loader(scored, val_dl, mean, std, device, amp, tta=cfg.tta)
        vm = classification_metrics(labels, probs.argmax(1))
        by_origin = origin_accuracy(src, idx["val"], labels, probs)
        row = {"epoch": epoch + 1, "train_loss": tot / max(nb, 1), "val_loss": _nll(probs, labels),
               "val_accuracy": vm["accuracy"], "val_macro_f1": vm["macro_f1"],
               "lr": opt.param_groups[0]["lr"], "train_seconds": round(train_s, 2),
               "images_per_s": round(len(train_ds) / max(train_s, 1e-9), 1),
               **{f"val_accuracy_{k}": v for k, v in by_origin.items()}}
        history.append(row)
        if epoch == start:
            # written only now: a bad image or setting met in the first epoch leaves the run folder
            # (perhaps an earlier run's, with --overwrite) as it was
            write_text(run / "args.yaml", _yaml(args))
        improved = (vm["accuracy"], -row["val_loss"]) > (best[0], -best[1])
        if improved:
            best, best_epoch = (vm["accuracy"], row["val_loss"]), epoch
            save_checkpoint(run / "weights" / "best.pt", scored, metrics={"val": vm, "epoch": epoch + 1},
                            **ck_common)
        state = {"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "epoch": epoch,
                 "best": list(best), "best_epoch": best_epoch, "history": history,
                 "train_seconds": train_seconds}
        if ema is not None:
            state["ema"] = {k: v.detach().cpu() for k, v in ema.module.state_dict().items()}
        save_checkpoint(last_pt, net, metrics={"val": vm, "epoch": epoch + 1}, train_state=state,
                        **ck_common)
        write_csv(run / "results.csv", pd.DataFrame(history))
        print(f"epoch {epoch + 1}/{cfg.epochs}: train loss {row['train_loss']:.4f}  "
              f"val loss {row['val_loss']:.4f}  val {summary_line(vm)}  "
              + "".join(f"[{k} acc {v:.2%}]  " for k, v in by_origin.items())
              + f"{train_s:.1f}s ({row['images_per_s']:.0f} img/s){'  *best' if improved else ''}",
              flush=True)

    if not dd.main:
        _end_dist(dd)
        return {}
    out = finish_run(run, cfg, src, idx, device, amp, ck_common, history, best_epoch, train_seconds)
    _end_dist(dd)
    return out


def _end_dist(d: Dist) -> None:
    if d.world > 1:
        import torch.distributed as dist

        dist.barrier()  # process 0's files are complete before any process exits
        dist.destroy_process_group()


def finish_run(run, cfg, src, idx, device, amp, ck_common, history, best_epoch, train_seconds):
    """Score best.pt on val (and test), write metrics.json and the confusion PNGs."""
    from .checkpoint import build_model, read_checkpoint

    ck = read_checkpoint(run / "weights" / "best.pt")
    model = build_model(ck).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    mean, std = ck_common["mean"], ck_common["std"]
    out = {"backbone": cfg.backbone, "init": ck_common["args"]["init"], "imgsz": cfg.imgsz,
           "best_epoch": best_epoch + 1, "epochs_run": len(history),
           "train_seconds": round(train_seconds, 1), "device": _device_name(device),
           "data": src.origin, "manifest_hash": src.manifest_hash,
           "train_images": int(len(idx["train"]))}
    for split in ("val", "test"):
        if split == "test" and (not cfg.eval_test or len(idx["test"]) == 0):
            continue
        ds = CellDataset(src, idx[split], EvalTransform(cfg.imgsz))
        dl = make_loader(ds, max(cfg.batch, 64), False, cfg.workers, cfg.seed,
                         pin=device.type == "cuda")
        probs, labels = predict_loader(model, dl, mean, std, device, amp, tta=cfg.tta)
        m = classification_metrics(labels, probs.argmax(1))
        out[split] = m
        parts = split_metrics(src, idx[split], labels, probs)
        if parts:
            out[f"{split}_parts"] = parts
            for k, v in parts.items():
                print(f"best.pt on {split} {k}: {summary_line(v)}")
        save_confusion_png(m["confusion"], CLASS_NAMES,
                           run / ("confusion_matrix.png" if split == "val" else "confusion_matrix_test.png"),
                           f"{cfg.backbone} {cfg.imgsz}px, best epoch, {split} "
                           f"(acc {m['accuracy']:.2%})")
        print(f"best.pt on {split}: {summary_line(m)}")
    write_json(run / "metrics.json", out)
    save_checkpoint(run / "weights" / "best.pt", model,
                    metrics={k: v for k, v in out.items()}, **ck_common)
    print(f"results in {run}")
    return out


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()} cpu, {torch.get_num_threads()} threads"


def _yaml(d: dict) -> str:
    import yaml

    return yaml.safe_dump(d, sort_keys=False)
