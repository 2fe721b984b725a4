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


def umask() -> int:
    """The process's umask (read by setting and restoring it; done once)."""
    global _UMASK
    if _UMASK is None:
        _UMASK = os.umask(0o022)
        os.umask(_UMASK)
    return _UMASK


_UMASK: int | None = None


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
        if tmp_path.is_file():  # mkstemp makes it 0600; the final file gets what the umask allows
            os.chmod(tmp_path, 0o666 & ~umask())
        os.replace(tmp_path, path)
    except OSError as e:
        tmp_path.unlink(missing_ok=True)
        if e.filename is None:  # a write that failed (a full disk): name the file it was for
            raise OSError(e.errno, e.strerror, str(path)) from None
        raise
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
    # a path through a file (--out results.csv/sub): say so before anything tries to create it
    for parent in path.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise MixmagError(f"{path}: {parent} is a file, not a folder; choose another path")
            break
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


# ---------------------------------------------------------------- one writer per output folder

LOCK_SUFFIX = ".mixmag-lock"


def _lock_file(out: Path) -> Path:
    return out.parent / f".{out.name}{LOCK_SUFFIX}"


@contextmanager
def output_lock(out: str | os.PathLike, command: str = "mixmag") -> Iterator[str | None]:
    """Hold the advisory lock of output ``out`` (a file ``.<name>.mixmag-lock`` beside it, holding
    the holder's pid, command and start time) for the block; a second run on the same output is
    refused in one line naming the holder. Yields the record of an earlier holder that died
    without releasing it (its run did not finish), else None. The lock file goes at the end."""
    import fcntl
    import time

    out = Path(out)
    lock = _lock_file(out)
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666 & ~umask())
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip() or "unknown"
            raise MixmagError(f"{out}: another run is writing it ({holder}); wait for it to end, "
                              "or choose another --out") from None
        earlier = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip() or None
        record = f"pid {os.getpid()}, {command}, started {time.strftime('%Y-%m-%d %H:%M:%S')}"
        os.ftruncate(fd, 0)
        os.pwrite(fd, record.encode(), 0)
        try:
            yield earlier
        finally:
            lock.unlink(missing_ok=True)  # still held: no other run can be between these two
    finally:
        os.close(fd)


@contextmanager
def replaced_folder(out: str | os.PathLike, overwrite: bool = False, kind: str = "output",
                    command: str = "mixmag") -> Iterator[Path]:
    """Write a whole output folder at once: the block writes into a fresh temporary sibling,
    which replaces ``out`` only when the block succeeds. With ``--overwrite`` the old folder goes
    as a whole (nothing stale survives); a run that fails or is killed leaves ``out`` as it was.
    Holds ``output_lock(out)`` throughout, and says when an earlier run into ``out`` did not
    finish (its temporary folder is removed)."""
    import logging
    import shutil

    out = prepare_output(out, overwrite, kind)
    if out.exists() and not out.is_dir():
        raise MixmagError(f"{out}: a file, where the {kind} folder goes; choose another --out")
    with output_lock(out, command) as earlier:
        stale = sorted(out.parent.glob(f".{out.name}.tmp-*")) if out.parent.is_dir() else []
        if earlier or stale:
            logging.getLogger(__name__).warning(
                "an earlier run into %s did not finish%s; its partial output is discarded", out,
                f" ({earlier})" if earlier else "")
            for d in stale:
                shutil.rmtree(d, ignore_errors=True)
        work = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
        os.chmod(work, 0o777 & ~umask())
        try:
            yield work
            if out.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
                os.rename(out, old / "out")
                os.rename(work, out)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.rename(work, out)
        finally:
            if work.exists():
                shutil.rmtree(work, ignore_errors=True)
