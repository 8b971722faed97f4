"""Make the shipped teaching checkpoint: the ISA teaching model, trained once on the relay task (``context``).

    .venv/bin/python benchmarks/make_teaching_checkpoint.py            # writes isanet/notebook/assets/teaching_isa.pth
    .venv/bin/python benchmarks/make_teaching_checkpoint.py --out X.pth

It trains :func:`isanet.notebook.teaching.train_teaching` (head ``isa``, seed 0, the ``teaching`` recipe's
iterations) on one CPU thread, so the run is deterministic for a given torch and OpenCV build (both pinned),
and keeps only what inference needs (weights and meta, no optimiser state): about 2 MB.
``tests/notebook/test_teaching.py`` checks that the shipped model needs both ISA steps, and its ``slow`` test
(``.venv/bin/python -m pytest -m slow tests/notebook/test_teaching.py``, about four CPU-minutes) reruns this
script and checks that it reproduces the shipped file within tolerance. The data is SYNTHETIC.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

from isanet.cli import parse_guarded
from isanet.cli.options import add_output
from isanet.io.checkpoint import load_model, save_checkpoint
from isanet.notebook.teaching import SHIPPED_CHECKPOINT, train_teaching


def make_teaching_checkpoint(out: Path, iters: int | None = None, seed: int = 0) -> dict:
    """Train the ISA teaching model and write its inference checkpoint to ``out``; returns the run's row."""
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="isanet_teaching_") as work_dir:
        row = train_teaching(work_dir, head="isa", seed=seed, **({"iters": iters} if iters else {}))
        trained = torch.load(row["checkpoint"], map_location="cpu", weights_only=True)
        meta = {key: trained["meta"][key] for key in ("config", "recipe", "dataset_meta", "iter", "seed")}
        meta.update(val_mIoU=row["mIoU"], task=row["task"], note="SYNTHETIC context task: knows only these scenes")
        save_checkpoint(load_model(row["checkpoint"]), out, meta=meta)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_output(parser, "--out", kind="file", suffixes=(".pth",), default=str(SHIPPED_CHECKPOINT),
               help="default: %(default)s (replaced only while it is the file its ledger records)")
    parser.add_argument("--iters", type=int, help="iterations (default: the teaching recipe's)")
    args = parse_guarded(parser, argv)
    args.out = Path(args.out)
    row = make_teaching_checkpoint(args.out, args.iters)
    print(f"wrote {args.out} ({args.out.stat().st_size / 2**20:.1f} MB): ISA teaching model, {row['iters']} "
          f"iterations, val mIoU {row['mIoU']:.2f}, {row['cpu_s'] / 60:.1f} CPU min; SYNTHETIC context task")
    return 0


if __name__ == "__main__":
    sys.exit(main())
