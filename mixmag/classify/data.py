"""Where training images come from: a split manifest (files on disk) or a bundle (encoded bytes).

Both sources give the same thing: ``image(i)`` -> RGB uint8 at the stored size, plus ``labels``,
``splits`` and ``paths`` (manifest-relative). Decoding happens in DataLoader workers.
"""

from __future__ import annotations

import os
import random

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from ..errors import MixmagError
from ..images import read_image
from .augment import prepare, seed_transform


class ManifestSource:
    def __init__(self, manifest: pd.DataFrame, size: int):
        self.abspaths = manifest["abspath"].to_numpy(str)
        self.paths = manifest["path"].to_numpy(str)
        self.labels = manifest["class_id"].to_numpy(np.int64)
        self.splits = manifest["split"].to_numpy(str)
        self.size = size
        self.manifest_hash = manifest.attrs.get("manifest_hash", "")
        self.origin = f"manifest ({manifest.attrs.get('pbc_root', '?')})"

    def __len__(self) -> int:
        return len(self.labels)

    def image(self, i: int) -> np.ndarray:
        from ..data.scan import MIN_SOURCE_SIDE

        return prepare(read_image(self.abspaths[i], min_side=MIN_SOURCE_SIDE), self.size)


class BundleSource:
    def __init__(self, path, size: int | None = None):
        from .bundle import Bundle

        self.bundle = Bundle(path)
        if size is not None and size != self.bundle.size:
            # the bundle fixes the stored size; training resizes from it to --imgsz anyway
            pass
        self.size = self.bundle.size
        self.labels, self.splits, self.paths = self.bundle.labels, self.bundle.splits, self.bundle.paths
        self.manifest_hash = self.bundle.manifest_hash
        self.origin = f"bundle {path}"

    def __len__(self) -> int:
        return len(self.labels)

    def image(self, i: int) -> np.ndarray:
        return self.bundle.image(i)


def open_source(split: str | None = None, bundle: str | None = None, size: int = 160,
                pbc: str | None = None, verify: str = "sample"):
    """The training images: ``bundle`` if given, else the manifest ``split`` (read from disk)."""
    if bundle:
        return BundleSource(bundle)
    if not split:
        raise MixmagError("no training data: pass --split MANIFEST.csv or --bundle FILE.npz")
    from ..data.split import load_manifest

    return ManifestSource(load_manifest(split, pbc=pbc, verify=verify), size)


def subset_indices(labels: np.ndarray, idx: np.ndarray, fraction: float | None = None,
                   per_class: int | None = None, seed: int = 0) -> np.ndarray:
    """A seeded, per-class subset of ``idx``: ``per_class`` images a class, or ``fraction`` of each."""
    if fraction is None and per_class is None:
        return idx
    if fraction is not None and not 0 < fraction <= 1:
        raise MixmagError(f"--train-fraction {fraction}: must be in (0, 1]")
    if per_class is not None and per_class < 1:
        raise MixmagError(f"--per-class {per_class}: must be at least 1")
    rng = np.random.default_rng(seed)
    keep = []
    for c in np.unique(labels[idx]):
        members = idx[labels[idx] == c]
        n = per_class if per_class is not None else max(1, int(round(fraction * len(members))))
        keep.append(rng.permutation(members)[:min(n, len(members))])
    return np.sort(np.concatenate(keep))


class CellDataset(Dataset):
    """Items are (HWC uint8 tensor at the network input size, class id); normalisation is on device."""

    def __init__(self, source, indices, transform):
        self.source, self.indices, self.transform = source, np.asarray(indices), transform

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int):
        i = int(self.indices[k])
        img = self.transform(image=self.source.image(i))["image"]
        return torch.from_numpy(np.ascontiguousarray(img)), int(self.source.labels[i])


def _worker_init(_wid: int) -> None:
    # torch gives each worker base_seed + id, base_seed drawn from the loader's seeded generator:
    # streams differ between workers, continue across epochs, and repeat for the same --seed.
    s = torch.initial_seed() % (2**32)
    info = torch.utils.data.get_worker_info()
    seed_transform(info.dataset.transform, s)


def make_loader(dataset: CellDataset, batch: int, shuffle: bool, workers: int, seed: int,
                drop_last: bool = False, pin: bool = False, sampler=None) -> DataLoader:
    """One loader for the whole run: persistent workers (no respawn per epoch), seeded shuffling
    (or the given ``sampler``'s order: a DistributedSampler's share of each epoch)."""
    g = torch.Generator()
    g.manual_seed(seed)
    if workers == 0:
        seed_transform(dataset.transform, seed)
    return DataLoader(dataset, batch_size=batch, shuffle=shuffle and sampler is None,
                      sampler=sampler, num_workers=workers,
                      generator=g, worker_init_fn=_worker_init if workers else None,
                      drop_last=drop_last, pin_memory=pin, persistent_workers=workers > 0,
                      prefetch_factor=4 if workers else None)


def to_input(batch_u8: torch.Tensor, mean, std, device, channels_last: bool = False) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> normalised (B, 3, H, W) float on ``device``."""
    x = batch_u8.to(device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)
    m = torch.tensor(mean, device=device).view(1, 3, 1, 1)
    s = torch.tensor(std, device=device).view(1, 3, 1, 1)
    x = (x - m) / s
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x.contiguous()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))
