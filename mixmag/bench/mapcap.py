"""The highest COCO mAP@0.5 (one class a cell) a classifier's per-class recall allows.

COCO's AP averages interpolated precision at 101 recall points (0, 0.01, ..., 1); a point above a
class's highest recall counts 0. With one class a cell and every box found, a class's highest
recall is the share of its cells labelled right, so its AP is at most (floor(100 r) + 1) / 101,
reached when every right label outranks every wrong one. ``benchmarks/map_cap.py`` prints it for
every ``per_class`` block of a result file.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

__all__ = ["ap_cap", "blocks", "cap_line"]


def ap_cap(recall: float) -> float:
    """The highest AP@0.5 a class with this recall can score: (floor(100 r) + 1) / 101."""
    # the 1e-9 keeps a recall of exactly k/100 on its own point despite float error
    return (math.floor(100 * recall + 1e-9) + 1) / 101


def blocks(o, path="") -> Iterator[tuple[str, dict[str, float]]]:
    """(where, {class: recall}) for every ``per_class`` block in a result (nested dicts), where
    is the path of keys to it (``/`` at the top)."""
    if isinstance(o, dict):
        for k, v in o.items():
            if k == "per_class" and isinstance(v, dict):
                yield path or "/", {c: x["recall"] for c, x in v.items()}
            else:
                yield from blocks(v, f"{path}/{k}")


def cap_line(rec: dict[str, float]) -> str:
    """The ceiling of one block: mAP@0.5 at most the mean of the classes' caps, and the three
    lowest classes with their recall and cap."""
    caps = {c: ap_cap(r) for c, r in rec.items()}
    worst = sorted(caps, key=caps.get)[:3]
    return (f"mAP@0.5 at most {sum(caps.values()) / len(caps):.4f}; lowest "
            + ", ".join(f"{c} recall {rec[c]:.3f} -> AP <= {caps[c]:.3f}" for c in worst))
