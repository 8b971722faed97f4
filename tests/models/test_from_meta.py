"""config_from_meta: the architecture a checkpoint's meta records, in today's form and the older one."""

from isanet.models.config import TINY, ISANetConfig
from isanet.models.from_meta import config_from_meta

VOC = "isanet_r50-d8_4xb4-20k_voc12aug-512x512"


def test_the_stored_config_decides_everything():
    config = ISANetConfig.tiny(num_classes=3, head="dense")
    assert config_from_meta({"model_config": config.to_dict(), "zoo_name": VOC}) == config


def test_files_from_before_the_stored_config_still_give_their_architecture():
    meta = {"zoo_name": VOC, "config": {"model_overrides": TINY}, "dataset_meta": {"classes": ["a", "b", "c"]}}
    assert config_from_meta(meta) == ISANetConfig(depth=18, channels=64, isa_channels=32, aux_channels=32,
                                                  num_classes=3)
    assert config_from_meta({"zoo_name": VOC, "config": {"model_overrides": TINY}}).num_classes == 21


def test_a_published_files_meta_names_no_architecture():
    assert config_from_meta({"dataset_meta": {"classes": ["road"]}}) is None
    assert config_from_meta({}) is None
