"""mixmag predict: find, classify and size every cell in images (see `--help`)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mixmag.cli import main  # noqa: E402

sys.exit(main(["predict", *sys.argv[1:]]))
