"""The training log (``work_dir/log.jsonl``): written by the trainer, read by resume, plots and notebooks.

The trainer writes one JSON object per iteration (``iter``, ``loss``, ``lr``, ``decode.loss_ce``, ...) and
adds ``mIoU``/``aAcc``/``mAcc`` to the iterations it evaluated at (``iter`` 0 is an evaluation before training).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from isanet.io.atomic import json_safe, write_text_atomic


def read_log(path: str | os.PathLike) -> list[dict]:
    """The records of a ``log.jsonl``, in order; a half-written last line (a run being killed) is skipped."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"training log {path}: no such file (the trainer writes WORK_DIR/log.jsonl)")
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and "iter" in record:
            records.append(record)
    return records


class JsonlLog:
    """``work_dir/log.jsonl``: one JSON object per line, flushed as written (a live notebook can tail it)."""

    def __init__(self, path: Path, keep_up_to: int | None = None):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        if keep_up_to is not None:
            self.truncate(keep_up_to)
        self.handle = path.open("a", encoding="utf-8")

    def truncate(self, last_iter: int) -> None:
        """Drop the records after ``last_iter`` (a killed run's iterations that the checkpoint does not hold;
        all of them for ``-1``), and a half-written last line; rewritten atomically."""
        if self.path.is_file():
            kept = [record for record in read_log(self.path) if record["iter"] <= last_iter]
            write_text_atomic("".join(json.dumps(record) + "\n" for record in kept), self.path)

    def write(self, record: dict) -> None:
        self.handle.write(json.dumps(json_safe(record)) + "\n")
        self.handle.flush()

    def close(self) -> None:
        self.handle.close()
