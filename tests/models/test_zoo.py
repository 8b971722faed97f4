import json

import pytest
import torch

from isanet.models import zoo
from tests.conftest import reference_file


def test_zoo_is_the_published_table():
    published = json.loads(reference_file("isanet_zoo.json").read_text())
    assert [zoo.get_entry(entry["name"]).to_dict() for entry in published] == published
    assert len(zoo.list_models()) == 16


def test_names_and_legacy_names_give_the_same_entry():
    entry = zoo.get_entry("isanet_r50-d8_512x1024_40k_cityscapes").to_dict()
    assert entry["name"] == "isanet_r50-d8_4xb2-40k_cityscapes-512x1024"
    assert entry["mIoU"] == 78.49 and entry["mIoU_ms_flip"] == 79.44 and entry["sha256_prefix"] == "981bd763"


def test_unknown_name_suggests_close_ones():
    with pytest.raises(KeyError, match="Did you mean: isanet_r50-d8_4xb2-40k_cityscapes-512x1024"):
        zoo.get_entry("isanet_r50-d8_4xb2-40k_cityscape-512x1024")


def test_get_entry_returns_a_copy():
    zoo.get_entry(zoo.list_models()[0]).to_dict()["crop_size"][0] = -1
    assert zoo.get_entry(zoo.list_models()[0]).to_dict()["crop_size"][0] == 512


@pytest.mark.parametrize("name", zoo.list_models())
def test_every_entry_builds_with_the_reference_keys_and_shapes(name, manifests):
    entry = zoo.get_entry(name).to_dict()
    with torch.device("meta"):
        model = zoo.build_model(name)
    ours = [(key, list(value.shape), str(value.dtype)) for key, value in model.state_dict().items()]
    expected = []
    for key, shape, dtype in manifests[entry["depth"]]:
        if key.endswith("conv_seg.weight") or key.endswith("conv_seg.bias"):
            shape = [entry["num_classes"], *shape[1:]]
        expected.append((key, shape, dtype))
    assert ours == expected
    assert model.align_corners is entry["align_corners"]


def test_num_classes_override_and_classes_lookup():
    with torch.device("meta"):
        model = zoo.build_model("isanet_r50-d8_4xb2-40k_cityscapes-512x1024", num_classes=21)
    assert model.decode_head.conv_seg.out_channels == 21 and model.auxiliary_head.conv_seg.out_channels == 21
    assert len(zoo.entries_with_classes(150)) == 4 and zoo.entries_with_classes(7) == []


def test_table_lists_every_entry():
    table = zoo.format_table()
    assert len(table.splitlines()) == 18
    assert "isanet_r101-d8_4xb2-80k_cityscapes-769x769" in table and "slide" in table and "81.59" in table
