"""Atomic, overwrite-safe file writing.

Every output of mixmag goes through these helpers so that a killed command never leaves a
half-written file under its final name, and nothing is overwritten without ``--overwrite``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from .errors import MixmagError, OutputExistsError


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    The temporary file keeps the final suffix (some writers, e.g. cv2.imwrite and torch.save
    callers, pick the format from it).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.stem}.tmp-", suffix=suffix if suffix is not None else path.suffix,
        dir=path.parent,
    )
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any, indent: int | None = 1) -> None:
    write_text(path, json.dumps(obj, indent=indent, sort_keys=False, default=_json_default) + "\n")


def write_csv(path: str | os.PathLike, frame) -> None:
    """Write a pandas DataFrame as CSV atomically (no index column)."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, lineterminator="\n")


def _json_default(o: Any):
    import numpy as np

    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def prepare_output(path: str | os.PathLike, overwrite: bool = False, kind: str = "output") -> Path:
    """Check an output file or folder may be written; refuse an existing one without overwrite.

    An existing *empty* folder is fine. Returns the path. Nothing is deleted here: with
    ``overwrite`` the caller replaces files one by one (atomically), so a failed rerun still
    leaves the old complete files in place.
    """
    path = Path(path)
    if path.exists():
        if path.is_dir():
            if any(path.iterdir()) and not overwrite:
                raise OutputExistsError(
                    f"{kind} folder {path} already exists and is not empty; "
                    "pass --overwrite to replace it (or choose another --out)"
                )
        elif not overwrite:
            raise OutputExistsError(
                f"{kind} file {path} already exists; pass --overwrite to replace it"
            )
    return path


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def beside_weights(weights: str | os.PathLike, name: str) -> Path | None:
    """``name`` next to a weights file, or in the run folder above it (``runs/X/weights/best.pt``
    -> ``runs/X/name``); None if neither exists."""
    for cand in (Path(weights).with_name(name), Path(weights).parent.parent / name):
        if cand.is_file():
            return cand
    return None


def require_file(path: str | os.PathLike, what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise MixmagError(f"{what} {path} does not exist (or is not a file)")
    return path
