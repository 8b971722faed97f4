"""The ``isanet`` command line: one sub-command per file in this folder.

Each sub-command module exposes ``add_parser(subparsers)``, which registers its arguments and sets
``func`` (called with the parsed namespace, returning an exit code). Keeping them apart keeps each
command short and lets them import their own machinery (the trainer, the evaluation loop, matplotlib, ONNX)
only when they run. Torch itself is loaded by any ``isanet`` import (the package's API and the zoo the
options list), so ``--help`` takes about as long as importing torch. :func:`main` checks every marked output
of the chosen command with the one output guard (:func:`guard_outputs`) before the command's own code runs.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Iterator

from isanet.cli import attention, bench, data, download, evaluate, export, predict, train, zoo
from isanet.cli.errors import FAILURE, USAGE, USER_ERRORS, UsageError, error_message, usage_checks
from isanet.cli.options import inputs, outputs

__all__ = ["build_parser", "command_parser", "error_message", "guard_outputs", "leaf_commands", "main", "parse_guarded"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="isanet", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (zoo, download, evaluate, predict, train, bench, data, attention, export):
        module.add_parser(subparsers)
    return parser


def command_parser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The (sub-)sub-parser that parsed ``args`` (``isanet bench model``'s, not ``isanet bench``'s)."""
    while True:
        chosen = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
        if not chosen:
            return parser
        parser = chosen[0].choices[getattr(args, chosen[0].dest)]


def leaf_commands(parser: argparse.ArgumentParser, words: tuple[str, ...] = ()
                  ) -> dict[tuple[str, ...], argparse.ArgumentParser]:
    """Every leaf sub-command's parser by its words (``("bench", "model")``): what the tests walk."""
    chosen = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    if not chosen:
        return {words: parser}
    return {key: leaf for name, child in chosen[0].choices.items()
            for key, leaf in leaf_commands(child, (*words, name)).items()}


def guard_outputs(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Every marked output the command was given, through :func:`isanet.io.outputs.check_output` against its
    marked inputs: refused (:class:`OutputError`) before any work."""
    from isanet.io.outputs import check_output

    given = [(name, getattr(args, dest)) for name, dest in inputs(parser).items() if getattr(args, dest, None)]
    for option, spec in outputs(parser).items():
        action = next(action for action in parser._actions if option in action.option_strings)
        value = getattr(args, action.dest, None)
        if value is not None:
            check_output(value, option, kind=spec.kind, suffixes=spec.suffixes, inputs=given)


def parse_guarded(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> argparse.Namespace:
    """``parser.parse_args(argv)`` with its marked outputs through :func:`guard_outputs`, a refusal being
    argparse's own usage error (one line, exit 2): how the scripts beside the package (``benchmarks/``) check
    what they will write before their work, as every command does."""
    from isanet.io.outputs import OutputError

    args = parser.parse_args(argv)
    try:
        guard_outputs(parser, args)
    except OutputError as error:
        parser.error(str(error))
    return args


def one_line_warning(message, category, filename, lineno, line=None) -> str:
    """``warnings.formatwarning`` for the command line: ``warning: MESSAGE``, without a source line."""
    return f"warning: {str(message).splitlines()[0]}\n"


#: Loggers whose warnings are a library's internals, several lines each (torch.compile's "hit
#: config.recompile_limit" with its advice on diagnosing recompiles): off the terminal in normal runs.
QUIET_LOGGERS = ("torch._dynamo", "torch._inductor")


@contextlib.contextmanager
def quiet_library_logs() -> Iterator[None]:
    """Inside: :data:`QUIET_LOGGERS` say errors only (``ISANET_DEBUG=1``: everything, as torch configured them)."""
    loggers = [] if os.environ.get("ISANET_DEBUG") else [logging.getLogger(name) for name in QUIET_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``isanet`` console script; the exit status follows :mod:`isanet.cli.errors`."""
    parser = build_parser()
    args = parser.parse_args(argv)
    formatwarning, warnings.formatwarning = warnings.formatwarning, one_line_warning
    try:
        with usage_checks():
            guard_outputs(command_parser(parser, args), args)
        with quiet_library_logs():
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
    except Exception as error:  # a failure no check foresaw: still one line, the traceback on request
        if os.environ.get("ISANET_DEBUG"):
            raise
        print(f"isanet {args.command}: error: {type(error).__name__}: {error_message(error)} "
              "(ISANET_DEBUG=1 shows the traceback)", file=sys.stderr)
        return FAILURE
    finally:
        warnings.formatwarning = formatwarning
