"""The training log (``work_dir/log.jsonl``): written by the trainer, read by resume, plots and notebooks.

The trainer writes one JSON object per iteration (``iter``, ``loss``, ``lr``, ``decode.loss_ce``, ...) and
adds ``mIoU``/``aAcc``/``mAcc`` to the iterations it evaluated at (``iter`` 0 is an evaluation before training).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from isanet.io.atomic import json_safe, write_text_atomic
from isanet.io.outputs import record_output


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
    """``work_dir/log.jsonl``: one JSON object per line, flushed as written (a live notebook can tail it).

    The file is first written whole with the records up to ``keep_up_to`` (atomically, through the output guard:
    only the kit's own earlier log is replaced), then recorded in the folder's ledger as a file the kit appends
    to, and appended to through a descriptor that never follows a symbolic link; it is recorded again when
    closed. ``resumed``: the log is that of the run being continued, whoever last wrote it (a run of an older
    version recorded its log only in part), so it is taken as the kit's: its records up to ``keep_up_to`` stay."""

    def __init__(self, path: Path, keep_up_to: int | None = None, resumed: bool = False):
        self.path = path
        kept = [] if not path.is_file() else [record for record in read_log(path)
                                               if keep_up_to is None or record["iter"] <= keep_up_to]
        if resumed and path.is_file() and not path.is_symlink():
            record_output(path, appendable=True)
        write_text_atomic("".join(json.dumps(record) + "\n" for record in kept), path)
        record_output(path, appendable=True)
        handle = os.open(path, os.O_WRONLY | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0))
        self.handle = os.fdopen(handle, "a", encoding="utf-8")

    def write(self, record: dict) -> None:
        self.handle.write(json.dumps(json_safe(record)) + "\n")
        self.handle.flush()

    def close(self) -> None:
        self.handle.close()
        record_output(self.path, appendable=True)
