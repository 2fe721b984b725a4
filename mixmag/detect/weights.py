"""Reading detector weights without running code from them.

An ultralytics ``.pt`` is a pickle: loading one the usual way (``YOLO(path)``, an unrestricted
``torch.load``) runs whatever the file asks for, so a crafted file given as
``--detector`` would run its payload before any check. Here every detector file goes through
PyTorch's restricted unpickler (``weights_only=True``) with an allow-list of the classes a detector
checkpoint is made of: the ``torch.nn`` layers and ultralytics' network modules (``nn.Module``
subclasses, whose unpickling only fills attributes). Anything else a file names (``os.system``,
``builtins.eval``, ``subprocess.Popen``, a class of another package) is refused with one line
before anything runs.

A checkpoint built from layers outside the list (a custom network) can be loaded the unrestricted
way only on purpose: set ``MIXMAG_TRUST_PICKLE=1`` for files you made or trust (docs/reliability.md).
"""

from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
from functools import lru_cache
from pathlib import Path

from ..errors import MixmagError

TRUST_ENV = "MIXMAG_TRUST_PICKLE"


class RefusedWeights(MixmagError):
    """A weights file that names something outside the allow-list: refused, nothing run."""


def trusted() -> bool:
    """The documented opt-in: unrestricted unpickling of detector files (``MIXMAG_TRUST_PICKLE=1``)."""
    return os.environ.get(TRUST_ENV, "").strip().lower() in ("1", "true", "yes")


@lru_cache(maxsize=1)
def allowed_classes() -> tuple[type, ...]:
    """The network layer classes a detector checkpoint may name: every ``nn.Module`` subclass
    defined in ``torch.nn.modules.*``, ``ultralytics.nn.modules.*`` and ``ultralytics.nn.tasks``.
    Classes only: a function would let a file call it."""
    import torch.nn.modules
    import ultralytics.nn.modules
    import ultralytics.nn.tasks
    from torch import nn

    modules = [ultralytics.nn.tasks]
    for pkg in (torch.nn.modules, ultralytics.nn.modules):
        modules += [importlib.import_module(f"{pkg.__name__}.{m.name}")
                    for m in pkgutil.iter_modules(pkg.__path__)]
    found = {o for mod in modules for o in vars(mod).values()
             if inspect.isclass(o) and issubclass(o, nn.Module) and o.__module__ == mod.__name__}
    # the training settings of a checkpoint written mid-run (last.pt): a SimpleNamespace subclass,
    # whose unpickling only fills attributes
    from ultralytics.utils import IterableSimpleNamespace

    found.add(IterableSimpleNamespace)
    return tuple(sorted(found, key=lambda c: f"{c.__module__}.{c.__qualname__}"))


def load_checkpoint(path: str | os.PathLike, what: str = "--detector") -> dict:
    """The checkpoint dict of an ultralytics ``.pt``, read by the restricted unpickler (or, with
    the opt-in, the unrestricted one). A file that names anything outside the allow-list is refused
    with one line naming it; nothing in the file runs."""
    import pickle

    import torch

    path = Path(path)
    if trusted():  # the documented opt-in for files the user made or trusts
        ck = torch.load(path, map_location="cpu", weights_only=False)
    else:
        try:
            with torch.serialization.safe_globals(list(allowed_classes())):
                ck = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:
            name = _refused_global(str(e))
            raise RefusedWeights(
                f"{what} {path}: refused: the file asks to run or build {name}, which detector "
                "weights have no reason to hold; nothing in it was run. If you made this file "
                f"yourself with custom layers, set {TRUST_ENV}=1 to load it unrestricted") from None
        except Exception as e:  # noqa: BLE001 - torch raises many types for a file that is no checkpoint
            raise MixmagError(f"{what} {path}: not an ultralytics detector checkpoint "
                              f"({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''})"
                              ) from None
    if not isinstance(ck, dict):
        raise MixmagError(f"{what} {path}: not an ultralytics detector checkpoint (a "
                          f"{type(ck).__name__}, not a checkpoint dict)")
    return ck


def check_file(path: str | os.PathLike, what: str = "--detector") -> None:
    """Refuse (one line) a detector file the restricted unpickler would not read, before it is
    handed to code that unpickles it unrestricted (ultralytics' exporter and trainer)."""
    load_checkpoint(path, what)


def _refused_global(message: str) -> str:
    """The name PyTorch's restricted unpickler refused, from its message."""
    import re

    m = re.search(r"Unsupported global: GLOBAL ([\w.]+)", message) or \
        re.search(r"(?:global|GLOBAL)[: ]+([\w.]+)", message)
    if m:
        return m.group(1)
    first = message.strip().splitlines()[0] if message.strip() else "an object"
    return first[:120]
