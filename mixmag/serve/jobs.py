"""The server's job queue: one worker thread predicts queued batches, oldest first.

The queue is the ``batches`` table itself (status ``queued``), so jobs survive a page reload and
a server restart (a batch left ``running`` is queued again). The worker builds the pipeline once,
as `mixmag predict` would with the same options, and predicts each batch with
``predict_with``: the same code path, the same files, so the page shows exactly what predict
writes. Requests never wait for it: the web server's threads only read and edit the store.
"""

from __future__ import annotations

import logging
import threading

import pandas as pd

from ..errors import MixmagError
from .store import Store

log = logging.getLogger(__name__)


class Worker:
    def __init__(self, store: Store, build: dict):
        self.store = store
        self.build = build  # build_pipeline's arguments
        self.pipe = None
        self.models: dict = {}
        self.wake = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="mixmag-serve-worker", daemon=True)

    def start(self) -> None:
        n = self.store.requeue_interrupted()
        if n:
            log.info("%d batch(es) interrupted by the last stop: queued again", n)
        self.thread.start()

    def close(self, timeout: float = 30) -> None:
        self.stop.set()
        self.wake.set()
        self.thread.join(timeout)

    def pipeline(self):
        if self.pipe is None:
            from ..pipeline.build import build_pipeline

            self.pipe = build_pipeline(**self.build)
            self.models = {"detector": _model_name(self.pipe.meta["detector"]),
                           "classifier": _model_name(self.pipe.meta["classifier"]),
                           "backend": self.pipe.meta["backend"]}
        return self.pipe

    def _loop(self) -> None:
        while not self.stop.is_set():
            bid = self.store.next_queued()
            if bid is None:
                self.wake.wait(1.0)
                self.wake.clear()
                continue
            self.run(bid)

    def run(self, bid: str) -> None:
        from ..pipeline.run import predict_with

        store = self.store
        store.set_status(bid, "running")
        folder = store.batch_dir(bid)
        try:
            pipe = self.pipeline()
            predict_with(pipe, folder / "images", folder / "predict", recursive=True, draw=False,
                         progress=False, overwrite=True,
                         on_image=lambda row: store.image_done(bid, row))
            cells = pd.read_csv(folder / "predict" / "cells.csv")
            store.load_predictions(bid, cells, red=pipe.red_id is not None)  # and done
        except MixmagError as e:
            log.warning("batch %s failed: %s", bid, e)
            store.set_status(bid, "failed", str(e))
        except Exception as e:  # noqa: BLE001 - the page gets one line; the log keeps the rest
            log.exception("batch %s failed", bid)
            store.set_status(bid, "failed", f"{type(e).__name__}: {e}".splitlines()[0])


def _model_name(path) -> str | None:
    """A model as the page names it: its zoo folder (models/NAME/best.pt) or its file name."""
    if path is None:
        return None
    from pathlib import Path

    p = Path(path)
    return p.parent.name if p.name in ("best.pt", "detector.onnx", "classifier.onnx") else p.name
