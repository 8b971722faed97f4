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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="isanet", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (zoo, download, evaluate, predict, train, bench, data, attention, export):
        module.add_parser(subparsers)
    return parser


#: Errors that mean "bad input" (a missing file, a wrong name, a corrupt checkpoint): the user gets one line
#: naming what is wrong instead of a traceback. Set ISANET_DEBUG=1 to see the traceback anyway.
USER_ERRORS = (ValueError, KeyError, OSError, RuntimeError)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``isanet`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except USER_ERRORS as error:
        if os.environ.get("ISANET_DEBUG"):
            raise
        print(f"isanet {args.command}: error: {error_message(error)}", file=sys.stderr)
        return 1


def error_message(error: BaseException) -> str:
    """One line for the user: an OSError's file and reason in words (its first arg is a bare errno number),
    else the error's own message."""
    if isinstance(error, OSError) and error.strerror:
        names = " -> ".join(str(name) for name in (error.filename, error.filename2) if name is not None)
        return f"{names}: {error.strerror.lower()}" if names else error.strerror.lower()
    message = str(error.args[0]) if error.args else repr(error)
    return message.splitlines()[0] if message.strip() else repr(error)
