import sys

from mixmag.cli import main

sys.exit(main(["synthesize", *sys.argv[1:]]))
