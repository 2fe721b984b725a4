"""`mixmag serve`'s web app (FastAPI): upload, look, correct, download.

``create_app(data, build)`` returns the app; the page is static (``static/``: HTML, JS and CSS,
no build step, nothing from a CDN). Every error is a JSON ``{"error": "one line"}`` with a 4xx
status (5xx only for a fault of the server's own, still one line); the log keeps tracebacks.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from contextlib import asynccontextmanager
from pathlib import Path

import cv2
import numpy as np
from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..errors import MixmagError
from ..fileio import write_bytes
from ..images import ImageError, read_image
from .exports import write_exports
from .jobs import Worker
from .store import ALL_CLASSES, BadRequest, NotFound, Store

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
DOWNLOADS = {"cells.csv": "text/csv", "counts.csv": "text/csv",
             "coco_results.json": "application/json", "labels_coco.json": "application/json",
             "labels_yolo.zip": "application/zip", "counts_corrected.csv": "text/csv",
             "report.html": "text/html"}
# one colour a class for the page (the drawn images' palette, as RGB hex)
COLOURS = {"basophil": "#a0287e", "eosinophil": "#ff7800", "erythroblast": "#c82828",
           "ig": "#00a000", "lymphocyte": "#0050c8", "monocyte": "#007878",
           "neutrophil": "#303030", "platelet": "#dc00a0", "rbc": "#e0a0a0"}


class ClassEdit(BaseModel):
    class_name: str


class NewCell(BaseModel):
    x1: float
    y1: float
    x2: float
    y2: float
    class_name: str


def create_app(data: str | Path, build: dict | None = None, *, max_upload_mb: int = 2048,
               start_worker: bool = True) -> FastAPI:
    Path(data).mkdir(parents=True, exist_ok=True)
    lock = _hold_data_lock(Path(data))  # before the store: a second server must not requeue
    store = Store(data)
    worker = Worker(store, build or {})

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if start_worker:
            worker.start()
        yield
        if start_worker:
            worker.close()

    app = FastAPI(title="mixmag", version=__version__, lifespan=lifespan, docs_url="/api/docs",
                  redoc_url=None, openapi_url="/api/openapi.json")
    app.state.store, app.state.worker, app.state.data_lock = store, worker, lock

    @app.middleware("http")
    async def guard(request: Request, call_next):
        """Refuse, before the body is read, an upload larger than the limit, and any changing
        request sent by another web site's page (a browser sends its Origin: a form on any
        site could otherwise post to a server on this machine)."""
        if request.method in ("POST", "PATCH", "PUT", "DELETE"):
            origin = request.headers.get("origin")
            host = request.headers.get("host", "")
            if origin and origin.split("://", 1)[-1] != host:
                return _error(403, f"a request from another site ({origin}) is refused")
            length = request.headers.get("content-length")
            if length and length.isdigit() and int(length) > (max_upload_mb << 20) + (1 << 20):
                return _error(413, f"the upload is above the limit of {max_upload_mb} MB")
        return await call_next(request)

    # -------------------------------------------------------------- errors: one line, JSON
    def _error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    @app.exception_handler(NotFound)
    async def _not_found(request: Request, e: NotFound):
        return _error(404, str(e))

    @app.exception_handler(MixmagError)
    async def _bad(request: Request, e: MixmagError):
        return _error(400, str(e))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, e: StarletteHTTPException):
        return _error(e.status_code, str(e.detail))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, e: RequestValidationError):
        first = e.errors()[0] if e.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return _error(422, f"{where}: {first.get('msg', 'invalid request')}".strip(": "))

    @app.exception_handler(OverflowError)
    async def _overflow(request: Request, e: OverflowError):  # an id beyond SQLite's integers
        return _error(404, "no such id")

    @app.exception_handler(Exception)
    async def _fault(request: Request, e: Exception):
        log.exception("%s %s", request.method, request.url.path)
        return _error(500, f"the server failed on this request ({type(e).__name__}); see its log")

    # -------------------------------------------------------------- the page
    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/api/info")
    def info():
        return {"version": __version__, "models": worker.models or _model_names(build or {}),
                "classes": list(ALL_CLASSES[:-1]), "red_class": ALL_CLASSES[-1],
                "colours": COLOURS}

    # -------------------------------------------------------------- batches
    @app.post("/api/batches", status_code=201)
    async def upload(files: list[UploadFile] = File(...), name: str = Form("")):
        tmp = Path(tempfile.mkdtemp(prefix="upload-", dir=store.root))
        try:
            saved, total = [], 0
            for k, f in enumerate(files):
                path = tmp / f"{k:05d}"
                with path.open("wb") as out:
                    while chunk := await f.read(1 << 20):
                        total += len(chunk)
                        if total > max_upload_mb << 20:
                            raise BadRequest(f"the upload is above the limit of {max_upload_mb} MB")
                        out.write(chunk)
                saved.append((f.filename or f"file-{k}", path))
            # checking each image decodes it: off the event loop, so the page stays responsive
            batch, rejected = await run_in_threadpool(store.create_batch, saved, name,
                                                      max_bytes=max_upload_mb << 20)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        if batch is None:
            why = "; ".join(f"{r.file}: {r.error}" for r in rejected[:3]) or "no files"
            return JSONResponse({"error": f"nothing to predict ({why})",
                                 "rejected": [r.as_dict() for r in rejected]}, status_code=400)
        worker.wake.set()
        return {"batch": batch, "rejected": [r.as_dict() for r in rejected]}

    @app.get("/api/batches")
    def batches():
        return {"batches": store.batches()}

    @app.get("/api/batches/{bid}")
    def batch(bid: str):
        return {"batch": store.batch(bid), "images": store.images(bid)}

    @app.get("/api/batches/{bid}/images/{iid}/file")
    def image_file(bid: str, iid: int):
        """The image as a JPEG the browser shows (TIFFs and 16-bit PNGs included), made once."""
        src = store.image_path(bid, iid)
        shown = store.batch_dir(bid) / "shown" / f"{iid}.jpg"
        if not shown.is_file():
            ok, buf = cv2.imencode(".jpg", _read(src), [cv2.IMWRITE_JPEG_QUALITY, 92])
            if not ok:
                raise BadRequest(f"{store.image_row(bid, iid)['name']}: cannot be shown as a JPEG "
                                 "(a side above 65,500 px?)")
            shown.parent.mkdir(exist_ok=True)
            write_bytes(shown, buf.tobytes())  # a temporary of its own, then renamed
        return FileResponse(shown, media_type="image/jpeg")

    @app.get("/api/batches/{bid}/images/{iid}/cells")
    def image_cells(bid: str, iid: int):
        return {"cells": store.cells(bid, iid)}

    # -------------------------------------------------------------- cells and corrections
    @app.get("/api/cells/{cid}/crop")
    def crop(cid: int):
        c = store.cell_row(cid)
        img = _read(store.batch_dir(c["batch_id"]) / "images" /
                    store.image_row(c["batch_id"], c["image_id"])["name"])
        x1, y1, x2, y2 = (float(c[k]) for k in ("x1", "y1", "x2", "y2"))
        m = 0.25 * max(x2 - x1, y2 - y1)
        h, w = img.shape[:2]
        a = [int(max(0, x1 - m)), int(max(0, y1 - m)), int(min(w, x2 + m)), int(min(h, y2 + m))]
        part = img[a[1]:max(a[3], a[1] + 1), a[0]:max(a[2], a[0] + 1)]
        scale = 192 / max(part.shape[:2])
        part = cv2.resize(part, None, fx=scale, fy=scale,
                          interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
        ok, buf = cv2.imencode(".jpg", part, [cv2.IMWRITE_JPEG_QUALITY, 92])
        return Response(buf.tobytes(), media_type="image/jpeg")

    @app.patch("/api/cells/{cid}")
    def edit_cell(cid: int, edit: ClassEdit):
        return {"cell": store.set_class(cid, edit.class_name)}

    @app.delete("/api/cells/{cid}")
    def delete_cell(cid: int):
        store.delete_cell(cid)
        return {"deleted": cid}

    @app.post("/api/batches/{bid}/images/{iid}/cells", status_code=201)
    def add_cell(bid: str, iid: int, cell: NewCell):
        return {"cell": store.add_cell(bid, iid, (cell.x1, cell.y1, cell.x2, cell.y2),
                                       cell.class_name)}

    # -------------------------------------------------------------- downloads
    @app.get("/api/batches/{bid}/download/{name}")
    def download(bid: str, name: str):
        if name not in DOWNLOADS:
            raise NotFound(f"no download {name!r}; there are {', '.join(DOWNLOADS)}")
        b = store.batch(bid)
        if b["status"] != "done":
            raise BadRequest(f"batch {bid} is {b['status']}: downloads are ready once it is done")
        if name in ("labels_coco.json", "labels_yolo.zip", "counts_corrected.csv", "report.html"):
            path = write_exports(store, bid, name)
        else:
            path = store.batch_dir(bid) / "predict" / name
        stem = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in b["name"])[:60]
        return FileResponse(path, media_type=DOWNLOADS[name], filename=f"{stem}-{name}")

    return app


def _hold_data_lock(data: Path):
    """An exclusive lock on the data folder for the server's life: two servers on one folder
    would each requeue the other's running batch and edit one database at once."""
    import fcntl

    f = open(data / "serve.lock", "a+")  # noqa: SIM115 - held open for the app's life
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        raise MixmagError(f"--data {data}: another mixmag serve is using this folder; stop it or "
                          "give another --data") from None
    return f


def _read(path: Path) -> np.ndarray:
    try:
        return read_image(path)
    except ImageError as e:
        raise BadRequest(str(e)) from None


def _model_names(build: dict) -> dict:
    return {"detector": build.get("detector") or "the zoo's default",
            "classifier": build.get("classifier") or "the zoo's default"}
