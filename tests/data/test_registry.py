"""The data set registry: every entry's writer draws a sample its own reader reads, where the spec says, and
the commands offer exactly the registered names."""

from __future__ import annotations

import pytest

from isanet.cli import build_parser
from isanet.data.registry import DATASETS, build_dataset, dataset_class, write_sample_dataset


@pytest.mark.parametrize("kind", list(DATASETS))
def test_each_writer_draws_what_its_reader_reads(kind: str, tmp_path) -> None:
    spec = DATASETS[kind]
    top = write_sample_dataset(kind, tmp_path / "out", num_train=1, num_val=1, size=max(32, spec.min_size))
    assert top == (tmp_path / "out" if spec.top is None else tmp_path / "out" / spec.top)
    assert (top / "SAMPLE_DATA.txt").read_text().startswith(f"SYNTHETIC SAMPLE DATA written by isanet ({kind},")
    assert dataset_class(kind) is spec.reader
    for split in ("train", "val"):
        dataset = build_dataset(kind, top, split)
        assert type(dataset) is spec.reader and len(dataset) == 1
        assert dataset[0]["image"].shape[:2] == dataset[0]["label"].shape


def test_object_classes_only_where_the_spec_allows_them(tmp_path) -> None:
    allowed = {kind: spec.max_object_classes for kind, spec in DATASETS.items() if spec.max_object_classes}
    assert allowed == {"voc": 20, "folder": 7}
    with pytest.raises(ValueError, match=r"object_classes applies to voc \(1 to 20\) and folder \(1 to 7\) samples "
                                         "only, got 2 for ade20k"):
        write_sample_dataset("ade20k", tmp_path, object_classes=2)


@pytest.mark.parametrize("command", [["sample-data", "--out", "o"], ["train", "n", "--data-root", "d",
                                     "--work-dir", "w", "--dataset"], ["eval", "n", "--dataset"]])
def test_commands_offer_the_registered_data_sets(command: list[str], capsys) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args([*command, "coco"])
    assert f"invalid choice: 'coco' (choose from {', '.join(map(repr, DATASETS))})" in capsys.readouterr().err
