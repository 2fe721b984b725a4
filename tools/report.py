"""Evaluation report: `python tools/report.py --truth ... --pred ... --out runs/report/NAME`."""
import sys

from mixmag.cli import main

sys.exit(main(["report", *sys.argv[1:]]))
