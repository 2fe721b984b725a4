"""Pooled backbone features for every image of a manifest or bundle, cached on disk.

The cache key is (model hash, data hash): the model hash covers the backbone, its weight file (or
the fine-tuned checkpoint's bytes), input size and preprocessing; the data hash covers the images'
identities (paths, source sha256, labels, splits), the stored size and encoding, and the test-time
rescale. Either changing gives a new cache file, so a stale feature set is never reused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import MixmagError
from ..fileio import atomic_path, sha256_file
from .augment import EvalTransform
from .data import CellDataset, make_loader, open_source, to_input
from .registry import get_backbone

log = logging.getLogger(__name__)


@dataclass
class FeatureSet:
    X: np.ndarray
    y: np.ndarray
    splits: np.ndarray
    paths: np.ndarray
    meta: dict = field(default_factory=dict)
    cache_path: Path | None = None
    cached: bool = False

    @property
    def source(self) -> str:
        return self.meta.get("model", "?")

    def part(self, split: str):
        m = self.splits == split
        return self.X[m], self.y[m]


def _model_for(backbone, model, weights, imgsz, device):
    """(torch module, pooled fn, mean, std, imgsz, model hash, description)."""
    if model:
        from .checkpoint import build_model, read_checkpoint

        ck = read_checkpoint(model)
        b = get_backbone(ck["backbone"])
        net = build_model(ck, model)
        size = imgsz or int(ck["input_size"])
        key = f"ckpt:{sha256_file(model)}:{size}"
        return net, b.pooled, ck["mean"], ck["std"], size, key, f"fine-tuned {ck['backbone']} ({model})"
    b = get_backbone(backbone)
    net, init = b.build(1000 if backbone.startswith("efficientnet") else 8, pretrained=True,
                        weights=weights)
    if init == "random":
        raise MixmagError(f"features: {backbone} has no ImageNet weights here (pass --weights FILE); "
                          "random-init features are meaningless")
    size = imgsz or b.default_size
    wfile = weights
    if wfile is None and backbone.startswith("efficientnet"):
        from .backbones import lite_weight_file

        wfile = lite_weight_file(backbone)
    elif wfile is None:
        from .backbones import RESNET50_FILES, torchvision_cache_file

        wfile = next(p for f in RESNET50_FILES if (p := torchvision_cache_file(f)))
    key = f"imagenet:{backbone}:{sha256_file(wfile)}:{size}"
    return net, b.pooled, b.mean, b.std, size, key, f"ImageNet {backbone} ({init})"


def _data_key(src, scale: float) -> str:
    h = hashlib.sha256()
    kind = "bundle" if hasattr(src, "bundle") else "manifest"
    h.update(f"{kind}:{src.size}:{scale}\n".encode())
    if kind == "bundle":
        h.update(f"{src.bundle.path.stat().st_size}\n".encode())
    for row in zip(src.paths, src.labels, src.splits):
        h.update(("\t".join(map(str, row)) + "\n").encode())
    return h.hexdigest()


def pooled_features(model_parts, src, indices, device, scale: float = 1.0, batch: int = 64,
                    workers: int = 0, desc: str = "features", progress: bool = False) -> np.ndarray:
    """Pooled features (float32, one row per index) of ``src``'s images at ``indices``, uncached:
    for callers that need a few parts of a split (the training-size sweep)."""
    from tqdm import tqdm

    net, pooled, mean, std, size = model_parts
    dl = make_loader(CellDataset(src, indices, EvalTransform(size, scale)), batch, False, workers, 0)
    net = net.to(device).eval()
    with torch.inference_mode():
        feats = [pooled(net, to_input(xb, mean, std, device)).float().cpu().numpy()
                 for xb, _ in tqdm(dl, desc=desc, disable=not progress, unit="batch")]
    return np.concatenate(feats).astype(np.float32)


def compute_features(split=None, bundle=None, pbc=None, backbone="efficientnet_lite0", model=None,
                     weights=None, imgsz=None, cache="runs/features", device="cpu", batch=64,
                     workers=0, scale: float = 1.0, store_size: int | None = None,
                     splits=None, progress: bool = True) -> FeatureSet:
    """Features of the source's images (all splits, or those in ``splits``), cached.

    ``scale`` rescales each cell in its canvas before resizing (the rescaled-test protocol).
    """
    dev = torch.device(device)
    net, pooled, mean, std, size, mkey, desc = _model_for(backbone, model, weights, imgsz, dev)
    src = open_source(split, bundle, size=store_size or max(size, 160), pbc=pbc)
    sel = np.arange(len(src)) if splits is None else np.flatnonzero(np.isin(src.splits, list(splits)))
    if len(sel) == 0:
        raise MixmagError(f"features: no images in splits {list(splits)}")
    dkey = _data_key(src, scale) + ("" if splits is None else ":" + ",".join(sorted(splits)))
    key = hashlib.sha256(f"{mkey}|{dkey}".encode()).hexdigest()[:20]
    path = Path(cache) / f"feat-{key}.npz"
    if path.is_file():
        z = np.load(path, allow_pickle=False)
        log.info("features from cache %s", path)
        return FeatureSet(z["X"], z["y"], z["splits"].astype(str), z["paths"].astype(str),
                          json.loads(str(z["meta"])), path, True)
    t0 = time.perf_counter()
    X = pooled_features(model_parts=(net, pooled, mean, std, size), src=src, indices=sel,
                        device=dev, scale=scale, batch=batch, workers=workers,
                        desc=f"features {desc} {size}px", progress=progress)
    secs = time.perf_counter() - t0
    meta = {"model": desc, "model_key": mkey, "data_key": dkey, "imgsz": size, "scale": scale,
            "data": src.origin, "manifest_hash": src.manifest_hash, "seconds": round(secs, 1),
            "images_per_s": round(len(X) / max(secs, 1e-9), 1),
            "threads": torch.get_num_threads(), "device": str(dev)}
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, X=X, y=src.labels[sel], splits=src.splits[sel], paths=src.paths[sel],
                 meta=json.dumps(meta))
    log.info("features %s in %.0fs (%.0f images/s), cached at %s", X.shape, secs, len(X) / secs, path)
    return FeatureSet(X, np.asarray(src.labels)[sel], np.asarray(src.splits)[sel],
                      np.asarray(src.paths)[sel], meta, path, False)
