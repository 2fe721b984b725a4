"""``train-detector --resume``: continue an interrupted run as if it had never stopped.

ultralytics' own resume (``resume=True`` with the run's ``last.pt``) takes the settings from the
checkpoint's ``train_args`` and continues at the next epoch, but ``last.pt`` lacks part of the
training state:

- the weights it restarts from are the EMA's, stored in float16 (``"model": None``: the live
  model is not saved), and the optimizer's moments are stored in float16;
- no random state is stored: the new process reseeds, so the resumed epochs replay the shuffles,
  mosaics and colour jitter of the first epochs, and the train loader, the mosaic buffer and
  albumentations' own generators start over.

So it continues *a* run, not *the* run. After each epoch (ultralytics' ``on_model_save``) we keep
what ``last.pt`` lacks in ``weights/mixmag_resume.pt`` — live model, EMA and optimizer in float32,
the EMA update count, the Python, NumPy and torch generators, the train loader's shuffle
generator, albumentations' generators and the mosaic buffer — and put it back once ultralytics
has set up the resumed run (``on_pretrain_routine_end``). With ``--workers 0`` (the augmentation
runs in this process) the resumed run then reproduces the uninterrupted one bit for bit
(tests/test_reliability.py). With DataLoader workers, each worker's augmentation stream is not
restored: the run resumes equivalently, not identically. Tensors load with
``torch.load(weights_only=True)``; the random states travel as JSON text.
"""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import numpy as np
import torch

from ..fileio import atomic_path

log = logging.getLogger(__name__)

STATE_FILE = "mixmag_resume.pt"


def state_path(run: str | Path) -> Path:
    return Path(run) / "weights" / STATE_FILE


def install(yolo, save: bool = True, exact: bool = True) -> None:
    """Save the state after every epoch (unless ``save`` is off); restore it on a resume.

    ``exact`` off (a multi-GPU run): checkpoints are still written atomically, but no random
    state is kept or restored; one process's state restored in every process would give them
    the same augmentations, so such a run resumes as ultralytics resumes it."""
    yolo.add_callback("on_pretrain_routine_start", _atomic_checkpoints)
    if not exact:
        return
    yolo.add_callback("on_pretrain_routine_end", restore_state)
    if save:
        yolo.add_callback("on_model_save", save_state)


# ------------------------------------------------------------------ atomic last.pt / best.pt

class _AtomicPath(type(Path())):
    """A path whose ``write_bytes`` goes through a temporary file: ultralytics writes last.pt and
    best.pt with ``Path.write_bytes``, and a kill during that write would leave a truncated
    last.pt that no resume can read."""

    def write_bytes(self, data):  # noqa: D102
        with atomic_path(self) as tmp:
            Path(tmp).write_bytes(data)
        return len(data)


def _atomic_checkpoints(trainer) -> None:
    trainer.last, trainer.best = _AtomicPath(trainer.last), _AtomicPath(trainer.best)


# ------------------------------------------------------------------ random states

def _albumentations_nodes(dataset) -> tuple[object | None, list]:
    """albumentations' Compose inside ultralytics' transforms and every node below it (each
    holds its own generators), in a fixed order."""
    from ultralytics.data.augment import Albumentations

    comp = next((t.transform for t in getattr(dataset.transforms, "transforms", [])
                 if isinstance(t, Albumentations) and t.transform is not None), None)
    nodes, stack = [], [comp] if comp is not None else []
    while stack:
        node = stack.pop(0)
        if hasattr(node, "random_generator") and hasattr(node, "py_random"):
            nodes.append(node)
        stack[:0] = list(getattr(node, "transforms", []) or [])
    return comp, nodes


def _album_state(dataset) -> dict | None:
    comp, nodes = _albumentations_nodes(dataset)
    if comp is None:
        return None
    return {"seed": comp.seed, "nodes": [[n.random_generator.bit_generator.state,
                                           _jsonable(n.py_random.getstate())] for n in nodes]}


def _set_album_state(dataset, saved: dict | None) -> None:
    comp, nodes = _albumentations_nodes(dataset)
    if comp is None or saved is None:
        return
    if saved["seed"] is not None and comp.seed != saved["seed"]:
        comp.set_random_seed(saved["seed"])  # as ultralytics does at first use
        comp, nodes = _albumentations_nodes(dataset)
    if len(nodes) != len(saved["nodes"]):
        log.warning("albumentations pipeline changed since the state was saved; its random "
                    "draws are not restored")
        return
    for node, (np_state, py_state) in zip(nodes, saved["nodes"]):
        node.random_generator.bit_generator.state = np_state
        node.py_random.setstate(_tuples(py_state))


def _jsonable(o):
    return [_jsonable(v) for v in o] if isinstance(o, (list, tuple)) else o


def _tuples(o):
    return tuple(_tuples(v) for v in o) if isinstance(o, list) else o


def _numpy_state() -> list:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return [name, keys.tolist(), int(pos), int(has_gauss), float(cached)]


def _set_numpy_state(s: list) -> None:
    np.random.set_state((s[0], np.array(s[1], dtype=np.uint32), s[2], s[3], s[4]))


# ------------------------------------------------------------------ save / restore

def _restore_shuffle(loader, saved, tail: bool) -> None:
    """Put the shuffle generator back, and draw what the uninterrupted run's sampler draws before
    the next epoch's permutation. torch's RandomSampler ends each pass with one more
    ``randperm(n)`` (the tail of ``num_samples % n``, empty here); the uninterrupted run's
    persistent iterator makes it lazily, at the next epoch's first batch, when the last batch
    left the sampler unexhausted: the batch was full (n divisible by the batch size) or
    incomplete batches are dropped. A new iterator starts with a fresh pass instead."""
    from torch.utils.data import RandomSampler

    loader.generator.set_state(saved)
    sampler = getattr(loader, "sampler", None)
    if not (isinstance(sampler, RandomSampler) and sampler.generator is loader.generator):
        log.warning("train loader sampler %s: shuffle order after resume not restored exactly",
                    type(sampler).__name__)
        return
    n = len(sampler.data_source)
    if tail and not sampler.replacement and (loader.drop_last or sampler.num_samples
                                             % loader.batch_size == 0):
        torch.randperm(n, generator=loader.generator)


def save_state(trainer) -> None:
    from ultralytics.utils.torch_utils import unwrap_model

    loader = trainer.train_loader
    ds = loader.dataset
    rng = {"python": _jsonable(random.getstate()), "numpy": _numpy_state(),
           "buffer": [int(i) for i in getattr(ds, "buffer", [])],
           "mosaic": bool(getattr(ds, "mosaic", False)), "albumentations": _album_state(ds)}
    state = {
        "format": "mixmag-detector-resume/1", "epoch": int(trainer.epoch),
        "model": {k: v.detach().clone() for k, v in unwrap_model(trainer.model).state_dict().items()},
        "ema": {k: v.detach().clone() for k, v in trainer.ema.ema.state_dict().items()},
        "ema_updates": int(trainer.ema.updates),
        "optimizer": trainer.optimizer.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "loader_rng": loader.generator.get_state() if loader.generator is not None else None,
        "rng": json.dumps(rng),
    }
    with atomic_path(state_path(trainer.save_dir)) as tmp:
        torch.save(state, tmp)


def load_state(run: str | Path) -> dict | None:
    path = state_path(run)
    if not path.is_file():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)


def restore_state(trainer) -> None:
    """On a resumed run: put back what last.pt lacks (after ultralytics' own resume_training)."""
    if not getattr(trainer, "resume", False):
        return
    from ultralytics.utils.torch_utils import unwrap_model

    epoch = trainer.start_epoch - 1  # the last epoch last.pt holds
    state = load_state(trainer.save_dir)
    if state is None or state.get("epoch") != epoch:
        log.warning("no exact resume state for epoch %d beside last.pt (%s); continuing from "
                    "last.pt as ultralytics does: equivalent to, not identical with, an "
                    "uninterrupted run", epoch + 1, state_path(trainer.save_dir))
        return
    rng = json.loads(state["rng"])
    unwrap_model(trainer.model).load_state_dict(state["model"])
    trainer.ema.ema.load_state_dict(state["ema"])
    trainer.ema.updates = state["ema_updates"]
    trainer.optimizer.load_state_dict(state["optimizer"])

    loader = trainer.train_loader
    ds = loader.dataset
    # the mosaic buffer holds the last images loaded, decoded; an image already decoded is not
    # appended again, so both the list and the decoded images must be as they were
    if hasattr(ds, "buffer") and rng["buffer"] and getattr(ds, "cache", None) != "ram":
        ds.buffer = []
        for i in rng["buffer"]:
            ds.ims[i], ds.im_hw0[i], ds.im_hw[i] = None, None, None
            ds.load_image(i)
        ds.buffer = list(rng["buffer"])
    # the loader's iterator draws a base seed from the shuffle generator when it is created:
    # create it now, so the next draw from the restored generator is the next epoch's shuffle
    if loader.iterator is None:
        loader.iterator = loader._get_iterator()
    close_at = trainer.epochs - trainer.args.close_mosaic if trainer.args.close_mosaic else None
    if state["loader_rng"] is not None and loader.generator is not None:
        if close_at is not None and trainer.start_epoch > close_at:
            # the trainer closes mosaic at its first epoch and resets the loader; the new
            # iterator draws a base seed the uninterrupted run (past that point) does not:
            # create it at once and restore after it
            reset = loader.reset

            def reset_then_restore():
                reset()
                loader.iterator = loader._get_iterator()
                _restore_shuffle(loader, state["loader_rng"], tail=True)
                loader.reset = reset

            loader.reset = reset_then_restore
        else:
            # at the closing epoch both runs reset the loader (a new iterator, a fresh pass):
            # no sampler tail is pending
            _restore_shuffle(loader, state["loader_rng"], tail=trainer.start_epoch != close_at)

    if close_at is None or trainer.start_epoch < close_at:
        _set_album_state(ds, rng["albumentations"])
    elif trainer.start_epoch > close_at:
        # the trainer closes mosaic at its first epoch, rebuilding the transforms (and
        # albumentations); the saved generators belong to the rebuilt pipeline
        close = ds.close_mosaic

        def close_then_restore(hyp):
            close(hyp)
            _set_album_state(ds, rng["albumentations"])
            ds.close_mosaic = close

        ds.close_mosaic = close_then_restore
    # (resuming exactly at the closing epoch: the rebuilt pipeline starts fresh in both runs)
    random.setstate(_tuples(rng["python"]))
    _set_numpy_state(rng["numpy"])
    torch.set_rng_state(state["torch_rng"])
    log.info("resumed exactly at epoch %d (model, EMA, optimizer and random states restored)",
             epoch + 2)
    if loader.num_workers:
        log.warning("%d DataLoader workers: their augmentation streams start afresh, so the "
                    "resumed run is equivalent to, not identical with, an uninterrupted one "
                    "(--workers 0 for an exact resume)", loader.num_workers)
