"""The product layer: the two-stage pipeline above ``classify`` and ``detect``.

``build_pipeline(preset, **overrides)`` resolves models through the zoo (``mixmag.zoo``),
picks the runtime (PyTorch or ONNX Runtime) and returns a ready ``Pipeline``; ``run_predict``
is ``mixmag predict`` as one call. Tiling, crops and outputs live here too, and the training
helpers that cut crops the way predict does (``pack-crops``, ``adapt-classifier``).

Names are imported on first use, so the CLI's help does not load PyTorch.
"""

from importlib import import_module

_WHERE = {"build_pipeline": "build", "CELL_COLUMNS": "predict", "Pipeline": "predict",
          "PredictOptions": "predict", "PredictResult": "predict", "list_sources": "predict",
          "PredictSummary": "run", "run_predict": "run", "export_models": "export"}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
