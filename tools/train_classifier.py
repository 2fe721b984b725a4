"""Thin entry point: ``python tools/train_classifier.py ARGS`` = ``mixmag train-classifier ARGS``."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mixmag.cli import main  # noqa: E402

sys.exit(main(["train-classifier", *sys.argv[1:]]))
