import sys

from mixmag.cli import main

sys.exit(main(["validate", *sys.argv[1:]]))
