"""``mixmag predict`` as one library call: sources in, the output folder written.

``run_predict(source, out, ...)`` lists the sources, builds the pipeline (``build_pipeline``), runs
it image by image and writes cells.csv, cells.json, coco_results.json, counts.csv and drawn/ in
OUT, each final file atomically once every image is through.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import MixmagError
from ..fileio import prepare_output, replaced_folder, write_bytes
from .build import build_pipeline, check_options, options_dict
from .outputs import StreamingOutputs, drawn_name, read_coco_ids, write_drawn
from .predict import list_sources

@dataclass
class PredictSummary:
    out: Path
    images: int            # read and predicted
    cells: int
    seconds: float
    skipped: list[str] = field(default_factory=list)   # non-image files
    failed: int = 0        # unreadable images
    drawn: bool = True
    red_cells: int | None = None  # red cells found (a detector that knows them), else None

    def lines(self) -> list[str]:
        rate = self.images / max(self.seconds, 1e-9)
        red = "" if self.red_cells is None else f" and {self.red_cells} red cell(s)"
        out = [f"{self.images} image(s), {self.cells} cell(s){red} in {self.seconds:.1f} s "
               f"({rate:.2f} images/s); wrote {self.out}/cells.csv, cells.json, "
               f"coco_results.json, counts.csv" + (", drawn/" if self.drawn else "")]
        if self.skipped or self.failed:
            out.append(f"skipped {len(self.skipped)} non-image file(s) and {self.failed} "
                       "unreadable image(s) (listed in cells.json)")
        return out


ENGINES = ("local", "ray")


def run_predict(source: str | os.PathLike, out: str | os.PathLike, *, preset: str = "default",
                detector: str | None = None, classifier: str | None = None,
                backend: str = "auto", device: str = "cpu", native_sizes: str | None = None,
                recursive: bool = False, coco_gt: str | None = None, draw: bool = True,
                progress: bool = True, overwrite: bool = False, engine: str = "local",
                address: str | None = None, workers: int | None = None,
                **options) -> PredictSummary:
    """Predict every image of SOURCE into the folder OUT (see ``build_pipeline`` for options).
    ``engine="ray"`` runs the images on a Ray actor pool (``mixmag.pipeline.ray_engine``:
    ``workers`` actors; ``address`` joins a cluster) and writes the same files."""
    if engine not in ENGINES:
        raise MixmagError(f"--engine {engine}: expected one of {', '.join(ENGINES)}")
    if engine == "local" and (address or workers):
        raise MixmagError("--address and --workers go with --engine ray")
    if workers is not None and workers < 1:
        raise MixmagError(f"--workers {workers}: must be >= 1")
    if engine == "ray":
        from .ray_engine import RAY_HINT, ray_available

        if not ray_available():
            raise MixmagError(f"--engine ray: Ray is not installed; {RAY_HINT}")
    out = prepare_output(Path(out), overwrite, "prediction")
    check_options(**options)
    if coco_gt:
        read_coco_ids(coco_gt)  # a bad truth file is refused now, not after every image
    # one writer per output folder; the new outputs replace the folder as a whole at the end
    with replaced_folder(out, overwrite, "prediction", "mixmag predict") as work:
        sources, skipped = list_sources(source, recursive, out=out)
        pipe = build_pipeline(preset, detector=detector, classifier=classifier, backend=backend,
                              device=device, native_sizes=native_sizes, **options)
        results = None
        if engine == "ray":
            from .ray_engine import ray_results

            build = dict(preset=preset, detector=detector, classifier=classifier,
                         backend=pipe.meta["backend"], device=device, native_sizes=native_sizes,
                         **options)
            results = ray_results(sources, build, draw=draw, workers=workers, address=address,
                                  batch_size=_ray_batch(pipe.opt.batch), progress=progress)
        try:
            summary = _predict_into(work, pipe, sources, skipped, coco_gt, draw, progress, results)
        except OSError as e:  # a spool or an output the disk refused: name it under --out
            name = str(e.filename or out).replace(str(work), str(out))
            raise OSError(e.errno, e.strerror, name) from None
    summary.out = out
    return summary


def _ray_batch(batch: int) -> int:
    """Images an actor takes a call: four detector batches (32). A detector batch's worth (8),
    meant to leave no actor idle long at the end of a run, measured slower (docs/HISTORY.md,
    2026-12-07); MIXMAG_RAY_BATCH overrides it."""
    return int(os.environ.get("MIXMAG_RAY_BATCH", 4 * batch))


def predict_with(pipe, source: str | os.PathLike, out: str | os.PathLike, *,
                 recursive: bool = False, draw: bool = True, progress: bool = True,
                 overwrite: bool = False, on_image=None) -> PredictSummary:
    """``run_predict`` with a pipeline already built (a server keeps one for every batch): the
    same files, written the same way. ``on_image(row)`` is called as each image is through
    (its cells.json record: image, width, height, n_cells, error)."""
    out = prepare_output(Path(out), overwrite, "prediction")
    with replaced_folder(out, overwrite, "prediction", "mixmag predict") as work:
        sources, skipped = list_sources(source, recursive, out=out)
        summary = _predict_into(work, pipe, sources, skipped, None, draw, progress,
                                on_image=on_image)
    summary.out = out
    return summary


def _predict_into(out: Path, pipe, sources, skipped, coco_gt, draw: bool, progress: bool,
                  results=None, on_image=None) -> PredictSummary:
    """Run the pipeline here, or take ``results`` ((row, cells, drawn JPEG) per source, in order:
    the Ray engine's), into OUT."""
    drawn = out / "drawn"
    # rows go to temporary spools as images finish (constant memory, however many images);
    # the final files are written, each atomically, only once every image is through
    with StreamingOutputs(out, coco_gt, red=pipe.red_id is not None) as outputs:
        t0 = time.perf_counter()
        if results is not None:
            for row, cells, jpeg in results:
                outputs.add(row, cells)
                if cells is not None and draw:
                    write_bytes(drawn / drawn_name(row["image"]), jpeg)
        for r in ([] if results is not None else pipe.iter_images(sources, progress=progress)):
            outputs.add(r.row, r.cells)
            if on_image is not None:
                on_image(r.row)
            if r.cells is not None and draw:
                img, cells, labels = r.drawing()
                write_drawn(drawn, r.source.name, img, cells, inplace=True, labels=labels)
        seconds = time.perf_counter() - t0
        failed = [r for r in outputs.images if r["error"]]
        if len(failed) == len(outputs.images) and failed:
            # nothing could be read: an error, not an empty result
            raise MixmagError(f"{failed[0]['error']}" + (f" (and {len(failed) - 1} more unreadable "
                                                          "image(s))" if len(failed) > 1 else ""))
        meta = {"detector": pipe.meta["detector"], "classifier": pipe.meta["classifier"],
                "backend": pipe.meta["backend"], "options": options_dict(pipe.opt),
                "tile": pipe.tile, "seconds": round(seconds, 3),
                "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "native_sizes": pipe.meta["native_sizes"]}
        outputs.finish(meta, skipped)
    return PredictSummary(out, len(outputs.images) - len(failed), outputs.n_cells - outputs.n_red,
                          seconds, skipped, len(failed), draw,
                          outputs.n_red if pipe.red_id is not None else None)
