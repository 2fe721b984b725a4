"""mixmag train-detector: train a YOLO detector on a generated dataset (see `--help`)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mixmag.cli import main  # noqa: E402

sys.exit(main(["train-detector", *sys.argv[1:]]))
