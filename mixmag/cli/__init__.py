"""The ``mixmag`` command: one module here per stage, the top of the import order.

Each module exposes ``register(subparsers)``; each subcommand sets ``func`` to a callable taking
the parsed args and returning an exit status (0 = success). A subcommand parses its arguments and
calls one library function: it loads no model and decides no default (the library and the model
zoo do).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from .. import __version__
from ..errors import MixmagError, describe_os_error

# the order of the subcommands in `mixmag --help`
STAGES = ("data", "synth", "classify", "pipeline", "detect", "predict", "evaluate", "serve")


def config_from_args(cls, args: argparse.Namespace):
    """A settings dataclass filled from the parsed options that share its field names (the rest
    of the namespace, e.g. ``func`` or output flags, is left out)."""
    fields = cls.__dataclass_fields__
    return cls(**{k: v for k, v in vars(args).items() if k in fields})


def run_script(main, prog: str) -> None:
    """Exit with a script's ``main()``; a MixmagError becomes one line on stderr and its exit
    code, as for the ``mixmag`` commands (benchmarks/ and tools/ scripts)."""
    try:
        sys.exit(main())
    except MixmagError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mixmag",
        description="Find and classify blood cells in images with mixed magnifications.")
    parser.add_argument("--version", action="version", version=f"mixmag {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for stage in STAGES:
        importlib.import_module(f"mixmag.cli.{stage}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except MixmagError as e:
        print(f"mixmag {args.command}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"mixmag {args.command}: interrupted; completed files are kept "
              "(rerun with --resume where the command supports it)", file=sys.stderr)
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as e:  # a read-only disk, a full one, a path through a file, no permission
        print(f"mixmag {args.command}: error: {describe_os_error(e)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
