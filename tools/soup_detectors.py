"""The weight average of detectors trained one from another (``mixmag.detect.average``), written
as a weights file beside a copy of the magnification.json of the part with the most classes.

    python tools/soup_detectors.py runs/detect/A/weights/best.pt runs/detect/B/weights/best.pt \
        --out runs/detect/soup-ab/weights/best.pt
    # a point between a detector and its fine-tune (WiSE-FT): 0.25 of the start, 0.75 of the tune
    python tools/soup_detectors.py detector-yolo11n-640-8class-ft \
        runs/detect/B/weights/best.pt --weights 0.25 0.75 --out runs/detect/wise-b-025/weights/best.pt
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mixmag.errors import MixmagError  # noqa: E402


def main(argv=None) -> int:
    import torch

    from mixmag.detect.average import average_detectors
    from mixmag.zoo import resolve
    from mixmag.fileio import atomic_path

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("parts", nargs="+", help="detector weights (.pt) or zoo names, two or more")
    ap.add_argument("--weights", nargs="+", type=float,
                    help="one weight a part, above 0 (normalised; default: equal)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--overwrite", action="store_true")
    args = ap.parse_args(argv)
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise MixmagError(f"--out {out}: exists; pass --overwrite to replace it")
    parts = [resolve(p, "detect")[0] for p in args.parts]
    ck = average_detectors(parts, args.weights)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        torch.save(ck, tmp)
    # native cell sizes are the training data's; the widest part's names every class of the average
    mag = Path(ck["mixmag"]["classes_from"]).with_name("magnification.json")
    if mag.is_file():
        shutil.copyfile(mag, out.with_name("magnification.json"))
    print(f"average of {len(args.parts)} detectors (weights "
          f"{[p['weight'] for p in ck['mixmag']['average_of']]}) -> {out}")
    return 0


if __name__ == "__main__":
    from mixmag.cli import run_script

    run_script(main, "tools/soup_detectors.py")
