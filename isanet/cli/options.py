"""The options several commands share, built once: one spelling, one check and one set of choices everywhere.

Choices come from the package's constants (:data:`isanet.runtime.PRECISIONS`, :data:`isanet.runtime.DEVICES`),
so a new precision reaches every command at once. Every option that names something a command writes is made
with :func:`add_output`, which marks it (:func:`outputs` lists the marks), so that one guard can check exactly
the outputs before any work and a test can see that none is left unmarked. Every option (or positional)
that names a file or folder a command reads is made with :func:`add_input`, so that the guard knows what an
output must never be, or lie inside.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Literal

from isanet.limits import bounded_float, bounded_int, image_side
from isanet.models.footprint import DEFAULT_CAP_GB, cap_bytes
from isanet.runtime import DEVICES, PRECISIONS

#: The attributes :func:`add_output` and :func:`add_input` set on an option's argparse action.
OUTPUT_MARK, INPUT_MARK = "isanet_output", "isanet_input"
#: The most CPU threads ``--threads`` accepts.
MAX_THREADS = 1024


@dataclass(frozen=True)
class Output:
    """What an output option names: a file (with the endings the command expects, best first) or a folder."""

    kind: Literal["file", "dir"]
    suffixes: tuple[str, ...] = ()

    @property
    def metavar(self) -> str:
        """``DIR``, ``FILE`` or ``FILE.json``: the help says what to give."""
        return "DIR" if self.kind == "dir" else f"FILE{self.suffixes[0]}" if self.suffixes else "FILE"


def add_output(parser: argparse.ArgumentParser, flag: str, *, kind: Literal["file", "dir"],
               suffixes: tuple[str, ...] = (), **kwargs) -> argparse.Action:
    """``flag`` as an output option, marked with its :class:`Output` (``kwargs`` go to ``add_argument``)."""
    if kind not in ("file", "dir"):
        raise ValueError(f"kind must be 'file' or 'dir', got {kind!r}")
    output = Output(kind, tuple(suffixes))
    action = parser.add_argument(flag, metavar=kwargs.pop("metavar", output.metavar), **kwargs)
    setattr(action, OUTPUT_MARK, output)
    return action


def outputs(parser: argparse.ArgumentParser) -> dict[str, Output]:
    """The marked output options of ``parser``: option string (e.g. ``--out``) -> :class:`Output`."""
    return {action.option_strings[0]: getattr(action, OUTPUT_MARK) for action in parser._actions
            if hasattr(action, OUTPUT_MARK)}


def add_input(parser: argparse.ArgumentParser, flag: str, **kwargs) -> argparse.Action:
    """``flag`` (an option, or a positional's name) as an input the command reads: marked, so that no output
    may be it or lie inside it (``kwargs`` go to ``add_argument``)."""
    action = parser.add_argument(flag, **kwargs)
    setattr(action, INPUT_MARK, True)
    return action


def inputs(parser: argparse.ArgumentParser) -> dict[str, str]:
    """The marked inputs of ``parser``: the name a message uses (``--checkpoint``, ``IMAGE``) -> namespace
    attribute."""
    return {(action.option_strings[0] if action.option_strings else action.dest.upper()): action.dest
            for action in parser._actions if getattr(action, INPUT_MARK, False)}


def add_precision(parser: argparse.ArgumentParser | argparse._ArgumentGroup, *, help: str,
                  default: str | None = "fp32", many: bool = False) -> argparse.Action:
    """``--precision`` from :data:`~isanet.runtime.PRECISIONS`; ``many``: one or more (one row each)."""
    return parser.add_argument("--precision", choices=PRECISIONS, nargs="+" if many else None,
                               default=[default] if many else default, help=help)


def add_device(parser: argparse.ArgumentParser | argparse._ArgumentGroup, *, default: str | None = "cpu",
               auto: bool = True, help: str | None = None) -> argparse.Action:
    """``--device`` from :data:`~isanet.runtime.DEVICES` (without ``auto`` where the command must know the
    device it reports on before it resolves it)."""
    choices = DEVICES if auto else tuple(device for device in DEVICES if device != "auto")
    return parser.add_argument("--device", choices=choices, default=default,
                               help=help or f"{', '.join(choices)} (default: %(default)s)")


def add_threads(parser: argparse.ArgumentParser, *, help: str = "torch.set_num_threads for CPU runs"
                ) -> argparse.Action:
    """``--threads N``, 1 to :data:`MAX_THREADS`."""
    return parser.add_argument("--threads", type=bounded_int(1, MAX_THREADS), help=help)


def add_checkpoint(parser: argparse.ArgumentParser, *, help: str, required: bool = False) -> argparse.Action:
    """``--checkpoint FILE``: weights to read (opened by the command's checks, so a missing or broken file is
    a usage error that names it)."""
    return add_input(parser, "--checkpoint", metavar="FILE", required=required, help=help)


#: Below about this many images a compile costs more than it saves: R-50-D8 512x512 fp32, one thread of the
#: project's Xeon, Inductor's cache warm (measured 28-53; cold ~130; benchmarks/README.md). ``bench model
#: --optimize`` measures it on yours.
FEW_IMAGES = 35


def add_optimize(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> argparse.Action:
    """``--optimize``: predict with :func:`isanet.optimize_for_inference`'s compiled copy."""
    return parser.add_argument(
        "--optimize", action="store_true",
        help="predict with a compiled copy (torch.compile, weights frozen; isanet.optimize_for_inference): "
             "fp32 logits within 1e-5, 1.05-1.2x faster on CPU (benchmarks/README.md) after a compile of tens of "
             "seconds per input size, so it pays off over many images, not a few")


def short_run_note(images: int) -> str | None:
    """The one line for a run too short to pay for ``--optimize``'s compile (None for a long enough run)."""
    if images >= FEW_IMAGES:
        return None
    return (f"note: --optimize compiles first (tens of seconds per input size); {images} image(s) will not pay "
            f"that back (break-even is about {FEW_IMAGES} images here; `isanet bench model NAME --optimize` "
            "measures it): leave --optimize off for a few images")


def add_memory_cap(parser: argparse.ArgumentParser | argparse._ArgumentGroup, what: str,
                   cpu_only: bool = False) -> argparse.Action:
    """``--memory-cap-gb GB``, the one memory bound of every command that builds tensors from the user's sizes:
    ``what`` (a picture, a bench row, ...) whose estimated peak (:mod:`isanet.models.footprint`) passes it is
    refused before anything is allocated; ``cpu_only`` where a GPU run reports its own out-of-memory as a
    result (the benches). :func:`memory_cap` reads it."""
    return parser.add_argument(
        "--memory-cap-gb", type=bounded_float(0), default=DEFAULT_CAP_GB, metavar="GB",
        help=f"{'CPU runs only: ' if cpu_only else ''}refuse, before allocating, {what} whose estimated peak "
             f"memory passes this many GiB (default: {DEFAULT_CAP_GB:g}; 0: no cap)")


def memory_cap(args: argparse.Namespace) -> tuple[int | None, str]:
    """``--memory-cap-gb`` in bytes (None: no cap), and how a refusal names it (``--memory-cap-gb 8``)."""
    return cap_bytes(args.memory_cap_gb), f"--memory-cap-gb {args.memory_cap_gb:g}"


def add_scale(parser: argparse.ArgumentParser | argparse._ArgumentGroup, *, help: str) -> argparse.Action:
    """``--scale LONG SHORT``: a test (or training) resize box, each side within the stated image bound."""
    return parser.add_argument("--scale", type=image_side, nargs=2, metavar=("LONG", "SHORT"), help=help)
