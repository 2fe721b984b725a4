"""Subcommand: serve (a local web page: upload images, look at the cells, correct, download)."""

from __future__ import annotations

import argparse
import ipaddress
import logging

from ..errors import MixmagError

log = logging.getLogger(__name__)
SERVE_HINT = "pip install 'mixmag[serve]' (FastAPI, uvicorn, python-multipart)"


def register(sub) -> None:
    p = sub.add_parser(
        "serve", help="a local web page: upload images, see every cell, correct, download",
        description="Start a web page on this computer: drop images (or a zip of them), watch "
                    "them being predicted, look at every cell, correct classes and boxes, and "
                    "download cells.csv, counts, corrected COCO / YOLO labels and a report. "
                    "Nothing leaves the machine.")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this computer only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--data", default="runs/serve",
                   help="folder for uploads, predictions and corrections (default runs/serve)")
    p.add_argument("--models", default="default",
                   help="a pipeline of the model zoo (models/zoo.yaml): 'default' (trained on "
                        "real fields; counts red cells), or 'composite' (default: 'default')")
    p.add_argument("--detector", help="a zoo name or weights file, instead of the pipeline's")
    p.add_argument("--classifier", help="a zoo name or checkpoint, instead of the pipeline's")
    p.add_argument("--backend", default="auto", help="auto, onnx or pytorch (as for predict)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--max-upload-mb", type=int, default=2048,
                   help="largest upload accepted, in MB (default 2048)")
    p.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from ..serve.app import create_app
    except ImportError:
        raise MixmagError(f"mixmag serve needs its web server: {SERVE_HINT}") from None
    if not 0 < args.port < 65536:
        raise MixmagError(f"--port {args.port}: must be in 1..65535")
    if args.max_upload_mb < 1:
        raise MixmagError(f"--max-upload-mb {args.max_upload_mb}: must be >= 1")
    build = {"preset": args.models, "detector": args.detector, "classifier": args.classifier,
             "backend": args.backend, "device": args.device}
    app = create_app(args.data, build, max_upload_mb=args.max_upload_mb)
    # the models load now: a wrong name or file is a one-line error before the server starts,
    # and the first batch does not wait for them
    try:
        app.state.worker.pipeline()
    except BaseException:
        app.state.data_lock.close()  # the folder is free again for a corrected command
        raise
    if not _loopback(args.host):
        log.warning("serving on %s: anyone who can reach this machine on port %d can upload "
                    "images and see every batch (use --host 127.0.0.1 to keep it local)",
                    args.host, args.port)
    print(f"mixmag serve: open http://{'localhost' if _loopback(args.host) else args.host}:"
          f"{args.port}/ (data in {args.data}; Ctrl-C stops)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
