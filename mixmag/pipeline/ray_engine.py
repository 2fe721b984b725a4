"""``mixmag predict --engine ray``: the same prediction on a Ray cluster (Ray Data actor pools).

The driver lists the sources and builds the pipeline once (which also exports the ONNX models
into the cache, so the actors only load them). A Ray Dataset of (index, path, name) rows is
mapped through an actor pool: each actor builds the same pipeline once (one model load per
actor), runs ``Pipeline.iter_images`` on its batch of images and returns, per image, the row
cells.json lists (JSON), the image's cells (Parquet: every column's dtype and every float exact)
and, when drawing, the drawn JPEG. Ray Data keeps the input order (``preserve_order``), so the driver writes the very
files a local run writes, through the same ``StreamingOutputs``, each final file atomically at
the end. A task on an actor that dies is retried by Ray; nothing is written until the driver has
the image's result. (Ray Data restarts an actor that dies and retries its batch: its defaults.)

Without ``address`` a local Ray instance starts (``workers`` actors of ``cpus_per_worker`` CPUs)
and stops at the end; with it, the driver joins that cluster, whose nodes must see the source
paths and the model files (shared storage). Ray is an optional extra: ``pip install mixmag[ray]``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path
from typing import Iterator

from ..errors import MixmagError

RAY_HINT = "pip install 'mixmag[ray]' (or: pip install 'ray[data]')"


def ray_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("ray") is not None


class PredictActor:
    """One model load per actor; predicts a batch of sources as a local run would."""

    def __init__(self, build: dict, draw: bool, threads: int):
        # each actor gets its share of the node's CPUs: ONNX Runtime, OpenCV and PyTorch would
        # otherwise each start one thread per core in every actor
        os.environ["MIXMAG_ORT_THREADS"] = str(threads)
        import cv2

        cv2.setNumThreads(threads)
        if build.get("backend") != "onnx":
            import torch

            torch.set_num_threads(threads)
        from .build import build_pipeline

        self.pipe = build_pipeline(**build)
        self.draw = draw

    def __call__(self, batch: dict) -> dict:
        import numpy as np

        from .outputs import drawn_jpeg
        from .predict import Source

        sources = [Source(Path(p), n) for p, n in zip(batch["path"], batch["name"])]
        at = {id(s): k for k, s in enumerate(sources)}
        rows, cells, drawn = [None] * len(sources), [None] * len(sources), [b""] * len(sources)
        # iter_images yields an unreadable image as soon as it is read, ahead of its group: the
        # results go back into the batch's order by their source
        for r in self.pipe.iter_images(sources, progress=False):
            k = at[id(r.source)]
            rows[k], cells[k] = json.dumps(r.row), _to_parquet(r.cells)
            if self.draw and r.cells is not None:
                img, drawn_cells, labels = r.drawing()
                drawn[k] = drawn_jpeg(r.source.name, img, drawn_cells, inplace=True, labels=labels)
        return {"i": np.asarray(batch["i"]), "row": np.array(rows, dtype=object),
                "cells": np.array(cells, dtype=object), "drawn": np.array(drawn, dtype=object)}


def ray_results(sources, build: dict, *, draw: bool, workers: int | None = None,
                address: str | None = None, cpus_per_worker: int = 1, batch_size: int = 16,
                progress: bool = True) -> Iterator[tuple[dict, object, bytes]]:
    """(row, cells, drawn JPEG bytes) per source, in the sources' order, from a Ray actor pool."""
    if not ray_available():
        raise MixmagError(f"--engine ray: Ray is not installed; {RAY_HINT}")
    import logging

    import ray
    import ray.data

    # Ray Data's executor logs would bury predict's one-line summary
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)
    with _ray_stderr_to_log() as console:
        yield from _run(ray, sources, build, draw, workers, address, cpus_per_worker, batch_size,
                        progress, console)


def _run(ray, sources, build, draw, workers, address, cpus_per_worker, batch_size, progress,
         console):
    started = False
    if not ray.is_initialized():
        kw = dict(address=address, include_dashboard=False, log_to_driver=False,
                  configure_logging=False)
        if address is None:
            kw["num_cpus"] = max(1, (workers or os.cpu_count() or 1) * cpus_per_worker)
        try:
            ray.init(**kw)
        except ConnectionError as e:
            raise MixmagError(f"--address {address}: no Ray cluster there ({e})") from None
        started = True
    try:
        if workers is None:
            workers = max(1, int(ray.cluster_resources().get("CPU", 1)) // cpus_per_worker)
        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True
        items = [{"i": k, "path": str(s.path), "name": s.name} for k, s in enumerate(sources)]
        # the actors load the exports the driver made (its cache: shared storage on a cluster)
        from .runtime import onnx_cache_dir

        env = {"MIXMAG_CACHE": str(onnx_cache_dir().resolve().parent)}

        class Actor(PredictActor):  # the settings travel with the class, not as arguments
            def __init__(self):     # (Ray keeps those in its object store, and warns of it)
                super().__init__(build, draw, cpus_per_worker)

        ds = ray.data.from_items(items).map_batches(
            Actor, batch_size=batch_size, concurrency=workers, num_cpus=cpus_per_worker,
            batch_format="numpy", runtime_env={"env_vars": env})
        bar = _bar(len(items), progress, console)
        try:
            for rec in ds.iter_rows():
                bar.update(1)
                yield json.loads(rec["row"]), _from_parquet(rec["cells"]), rec["drawn"]
        finally:
            bar.close()
    finally:
        if started:
            ray.shutdown()


def _to_parquet(cells) -> bytes:
    """An image's cells as Parquet bytes (b"" for an unreadable image, which has none)."""
    if cells is None:
        return b""
    buf = io.BytesIO()
    cells.reset_index(drop=True).to_parquet(buf, index=False)
    return buf.getvalue()


def _from_parquet(data: bytes):
    import pandas as pd

    return pd.read_parquet(io.BytesIO(data)) if data else None


def _bar(total: int, progress: bool, file):
    from tqdm import tqdm

    return tqdm(total=total, unit="img", disable=not progress, desc="predict (ray)", file=file)


@contextlib.contextmanager
def _ray_stderr_to_log():
    """Ray's C++ core writes notices straight to file descriptor 2 (one on every Ray Data actor
    pool, about its own constructor arguments: ray-project/ray#57733). While Ray runs, fd 2 goes
    to a log file under the temporary folder; the progress bar, and Python's errors, still reach
    the terminal through a copy of the original descriptor, restored at the end."""
    import sys
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    log = tempfile.NamedTemporaryFile(prefix="mixmag-ray-", suffix=".log", delete=False)
    console = os.fdopen(os.dup(saved), "w", buffering=1)
    os.dup2(log.fileno(), 2)
    failed = True
    try:
        yield console
        failed = False
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        console.close()
        log.close()
        if failed:  # what Ray said may explain it
            print(f"Ray's messages of this run: {log.name}", file=sys.stderr)
        else:
            os.unlink(log.name)
