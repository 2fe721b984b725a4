"""Offline-safe ultralytics: own config folder, no downloads, no auto-install, no polars needed.

What ultralytics 8.4 reaches for at run time, and how each is stopped here:

- ``is_online()`` resolves one.one.one.one / dns.google at import: ``YOLO_OFFLINE=1`` skips it.
- settings.json, fonts and weights go to the user's config dir (~/.config/Ultralytics):
  ``YOLO_CONFIG_DIR`` points them at a project folder instead (runs/.ultralytics).
- ``check_det_dataset`` calls ``check_font("Arial.ttf")`` on every training run, which sends
  ``requests.head`` to github.com when the font is not in the config dir (even with YOLO_OFFLINE):
  we place matplotlib's bundled DejaVu Sans there under the names it looks for.
- ``check_amp`` (CUDA only, ``amp=True``) loads ``yolo26n.pt`` from the weights folder, downloading
  it from github when absent, to compare FP32 and FP16 outputs. ``amp="bf16"`` never calls it
  (``BaseTrainer._setup_train``: ``if self.amp and self.args.amp != "bf16"``), which is what the GPU
  recipe uses; for ``amp=True`` the trainer's reference is replaced by a local check (AMP on CUDA,
  off on CPU/MPS, no model loaded), so no configuration reaches for the download.
- ``check_requirements`` pip-installs missing packages (onnxslim for ``simplify``, faster-coco-eval…):
  ``YOLO_AUTOINSTALL=0``; we also never ask for simplify.
- Telemetry (events, Sentry, platform/hub callbacks): settings ``sync=False``, no API key, and the
  integrations (clearml, comet, dvc, mlflow, raytune, tensorboard, wandb) off.
- polars (a 54 MB wheel, absent from bare GPU images) is imported by
  ``BaseTrainer.read_results_csv`` at every checkpoint save (outside its try block, so training dies
  at the end of epoch 1) and by ``plot_labels``/``plot_results`` (``plots=True``). Only when polars
  cannot be imported, the trainer method is replaced by a pandas reader that returns the same
  ``{column: [values]}`` dict (stored in the checkpoint as ``train_results``); with ``plots=False``
  training then runs without polars. Where polars imports, ultralytics is left as it is.

Call :func:`setup_ultralytics` before ``import ultralytics`` (it works after, too, except that the
config folder is fixed at ultralytics' first import).
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

log = logging.getLogger(__name__)

_PATCHED = False
FONT_NAMES = ("Arial.ttf", "Arial.Unicode.ttf")


def default_config_dir() -> Path:
    env = os.environ.get("MIXMAG_YOLO_CONFIG")
    return Path(env) if env else Path("runs") / ".ultralytics"


def setup_ultralytics(config_dir: str | os.PathLike | None = None):
    """Make ultralytics offline-safe and return the ``YOLO`` class.

    The config folder is, in order: ``config_dir``, an already set ``YOLO_CONFIG_DIR``,
    ``$MIXMAG_YOLO_CONFIG``, ``runs/.ultralytics`` (relative to the working directory).
    """
    global _PATCHED
    if config_dir is None:
        config_dir = os.environ.get("YOLO_CONFIG_DIR") or default_config_dir()
    config_dir = Path(config_dir).resolve()
    config_dir.mkdir(parents=True, exist_ok=True)
    os.environ["YOLO_CONFIG_DIR"] = str(config_dir)
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "0"
    # matplotlib would otherwise build its font cache in ~/.config/matplotlib
    os.environ.setdefault("MPLCONFIGDIR", str(config_dir / "matplotlib"))

    import ultralytics
    from ultralytics import YOLO
    from ultralytics.utils import SETTINGS, USER_CONFIG_DIR

    if not _PATCHED:
        _place_fonts(Path(USER_CONFIG_DIR))
        _quiet_settings(SETTINGS)
        _patch_amp_check()
        _patch_results_reader()
        _PATCHED = True
    log.debug("ultralytics %s offline, config %s", ultralytics.__version__, USER_CONFIG_DIR)
    return YOLO


def _place_fonts(folder: Path) -> None:
    """Put a bundled font where check_font looks first, so it never asks github for Arial."""
    import matplotlib

    src = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    folder.mkdir(parents=True, exist_ok=True)
    for name in FONT_NAMES:
        dst = folder / name
        if not dst.exists() and src.exists():
            shutil.copyfile(src, dst)


def _quiet_settings(settings) -> None:
    wanted = {"sync": False, "api_key": "", "clearml": False, "comet": False, "dvc": False,
              "mlflow": False, "raytune": False, "tensorboard": False, "wandb": False,
              "vscode_msg": False, "openvino_msg": False}
    if any(settings.get(k) != v for k, v in wanted.items()):
        settings.update(wanted)


def _local_amp_check(model) -> bool:
    """AMP on any CUDA device, off on CPU/MPS: ultralytics' own check downloads yolo26n.pt."""
    import torch

    device = next(model.parameters()).device
    ok = device.type == "cuda" and torch.cuda.is_available()
    log.info("AMP: %s (offline check, no yolo26n.pt download)", "on" if ok else "off")
    return ok


def _patch_amp_check() -> None:
    import ultralytics.engine.trainer as trainer
    import ultralytics.utils.checks as checks

    trainer.check_amp = _local_amp_check
    checks.check_amp = _local_amp_check


def read_results_csv_pandas(self) -> dict:
    """``BaseTrainer.read_results_csv`` without polars: results.csv as ``{column: [values]}``.

    Same contract as ultralytics' polars version: column names as written, int/float values, ``{}``
    when the file is missing or unreadable.
    """
    import pandas as pd

    try:
        return pd.read_csv(self.csv).to_dict(orient="list")
    except Exception:  # as upstream: a checkpoint without results beats a failed save
        return {}


def _patch_results_reader() -> bool:
    """Install the pandas reader only where polars is missing; True when installed."""
    if polars_available():
        return False
    from ultralytics.engine.trainer import BaseTrainer

    BaseTrainer.read_results_csv = read_results_csv_pandas
    log.info("polars not importable: ultralytics' results.csv reader replaced by pandas "
             "(train with plots=False)")
    return True


def polars_available() -> bool:
    """Whether ``import polars`` works (a broken or hidden install counts as missing)."""
    try:
        import polars  # noqa: F401
    except ImportError:
        return False
    return True
