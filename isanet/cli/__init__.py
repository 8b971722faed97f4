"""The ``isanet`` command line: one sub-command per file in this folder.

Each sub-command module exposes ``add_parser(subparsers)``, which registers its arguments and sets
``func`` (called with the parsed namespace, returning an exit code). Keeping them apart keeps each
command short and lets them import heavy modules only when they run.
"""

from __future__ import annotations

import argparse
import os
import sys

from isanet.cli import attention, bench, data, download, evaluate, export, predict, train, zoo
from isanet.cli.errors import FAILURE, USAGE, USER_ERRORS, UsageError, error_message

__all__ = ["build_parser", "error_message", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="isanet", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (zoo, download, evaluate, predict, train, bench, data, attention, export):
        module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``isanet`` console script; the exit status follows :mod:`isanet.cli.errors`."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except (UsageError, *USER_ERRORS) as error:
        if os.environ.get("ISANET_DEBUG"):
            raise
        print(f"isanet {args.command}: error: {error_message(error)}", file=sys.stderr)
        return USAGE if isinstance(error, UsageError) else FAILURE
