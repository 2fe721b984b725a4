"""Where a figure came from: the machine and the code, recorded beside every benchmark result."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (platform's guess elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def git_commit(repo: str | Path, short: bool = True) -> str:
    """HEAD of ``repo``, with ``-dirty`` when tracked files differ from it ('' outside git)."""
    args = ["git", "rev-parse", "--short" if short else "--verify", "HEAD"]
    head = subprocess.run(args, cwd=repo, capture_output=True, text=True).stdout.strip()
    if head:
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD"], cwd=repo).returncode != 0
        head += "-dirty" if dirty else ""
    return head


def library_versions(*names: str) -> dict[str, str]:
    """Installed versions of the libraries whose output a result depends on (the generator's masks
    and resizes change with OpenCV's version; boxes with ultralytics' and torch's), by distribution
    name; absent ones are left out."""
    from importlib import metadata

    out = {}
    try:  # the cv2 that imports: with both opencv-python and -headless installed, either may
        import cv2

        out["cv2"] = cv2.__version__
    except ImportError:
        pass
    for n in names or ("opencv-python", "opencv-python-headless", "numpy", "torch", "ultralytics",
                       "onnxruntime"):
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            pass
    return out
