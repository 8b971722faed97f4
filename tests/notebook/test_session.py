"""The notebooks' session helpers: every data set the registry knows has a sample a notebook can ask for, written
once where the registry says its top folder is, and read by the registry's reader."""

from __future__ import annotations

import re

import pytest

from isanet.data.registry import DATASETS, build_dataset
from isanet.notebook.session import sample_dataset


@pytest.mark.parametrize("kind", list(DATASETS))
def test_every_registered_data_set_has_a_notebook_sample(kind: str, tmp_path, capsys) -> None:
    spec = DATASETS[kind]
    size = max(32, spec.min_size)
    top = sample_dataset(kind, tmp_path, num_train=1, num_val=1, size=size)
    base = tmp_path / "data" / "samples" / f"{kind}-{size}px-1+1-seed0"
    assert top == (base if spec.top is None else base / spec.top)
    assert f"USING SYNTHETIC SAMPLE DATA ({kind}, 1 train / 1 val images" in capsys.readouterr().out
    dataset = build_dataset(kind, top, "val")
    assert type(dataset) is spec.reader and len(dataset) == 1
    written = (top / "SAMPLE_DATA.txt").stat().st_mtime_ns
    assert sample_dataset(kind, tmp_path, num_train=1, num_val=1, size=size, quiet=True) == top
    assert (top / "SAMPLE_DATA.txt").stat().st_mtime_ns == written  # reused, not written again


def test_unknown_kind_names_the_registered_ones(tmp_path) -> None:
    message = f"unknown sample data set 'pascal': choose one of {sorted(DATASETS)}"
    with pytest.raises(ValueError, match=re.escape(message)):
        sample_dataset("pascal", tmp_path)
