"""One result record for every benchmark: where a figure came from.

``start_record(__file__, argv)`` opens a record with the command line as run, the code's commit,
the machine, the library versions, the date and the 1-minute load average; the script adds its
figures; ``finish_record(record, path)`` adds the load at the end and writes it atomically::

    rec = start_record(__file__, argv, data=str(root))
    rec["figures"] = ...
    finish_record(rec, args.out)

The machines are often shared: a figure that depends on speed is read with its load
(``load1_start`` / ``load1_end``).
"""

from __future__ import annotations

import datetime as dt
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from ..fileio import write_json
from ..provenance import cpu_model, git_commit, library_versions

REPO = Path(__file__).resolve().parents[2]

__all__ = ["REPO", "code_commit", "command_line", "finish_record", "gpu_name", "load1", "machine",
           "start_record"]


def load1() -> float:
    """The 1-minute load average, rounded to 2 decimals."""
    return round(os.getloadavg()[0], 2)


def gpu_name() -> str | None:
    """The first GPU's name, or None: PyTorch's CUDA device when the script has imported
    PyTorch, else nvidia-smi's first line (a script that does not use PyTorch does not load it
    for this)."""
    torch = sys.modules.get("torch")
    if torch is not None:
        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        r = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                           capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    names = r.stdout.strip().splitlines() if r.returncode == 0 else []
    return names[0].strip() if names else None


def machine() -> str:
    """``CPU model, N CPUs[, GPU name]``."""
    gpu = gpu_name()
    return f"{cpu_model()}, {os.cpu_count()} CPUs" + (f", {gpu}" if gpu else "")


def code_commit(repo: str | os.PathLike = REPO) -> str:
    """The commit of the code that runs: ``$MIXMAG_COMMIT`` when set (a copy of the tree sent to
    another machine names the commit it was made from), else the checkout's short HEAD with
    ``-dirty`` when tracked files differ from it; ``unknown`` outside git."""
    if os.environ.get("MIXMAG_COMMIT"):
        return os.environ["MIXMAG_COMMIT"]
    try:
        return git_commit(repo) or "unknown"
    except OSError:  # no git
        return "unknown"


def command_line(script: str | os.PathLike, argv: list[str] | None = None) -> str:
    """``python SCRIPT ARGS`` as run (shell-quoted), the script relative to the repository; ``argv``
    are the arguments when ``main(argv)`` was called directly (default: ``sys.argv[1:]``)."""
    p = Path(script).resolve()
    shown = p.relative_to(REPO).as_posix() if p.is_relative_to(REPO) else str(p)
    args = sys.argv[1:] if argv is None else list(argv)
    return shlex.join(["python", shown, *map(str, args)])


def start_record(script: str | os.PathLike, argv: list[str] | None = None, **fields) -> dict:
    """A new record: command, git_commit, machine, libraries, date (local, ISO 8601), load1_start,
    then ``fields`` in their order."""
    return {"command": command_line(script, argv), "git_commit": code_commit(),
            "machine": machine(), "libraries": library_versions(),
            "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "load1_start": load1(), **fields}


def finish_record(record: dict, path: str | os.PathLike) -> Path:
    """Add ``load1_end`` to ``record`` and write it as JSON to ``path`` (atomically: a killed
    run leaves no half-written file). May be called again as a long run adds rows."""
    record["load1_end"] = load1()
    write_json(path, record)
    return Path(path)
