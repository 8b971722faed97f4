"""data/sample_checkpoint.py: the seeded random weights every small model and the parity test start from."""

import torch

from isanet.data.sample_checkpoint import random_state_dict


def test_random_state_dict_is_deterministic_and_sane(tiny_model):
    a, b, c = (random_state_dict(tiny_model, s) for s in (0, 0, 1))
    assert all(torch.equal(a[k], b[k]) for k in a) and not torch.equal(a["backbone.stem.0.weight"],
                                                                      c["backbone.stem.0.weight"])
    first_draws = torch.rand((32, 3, 3, 3), generator=torch.Generator().manual_seed(0))
    assert torch.equal(a["backbone.stem.0.weight"], (first_draws * 2 - 1) * ((2 / 27) ** 0.5 * 3**0.5))
    assert all(a[k].min() > 0 for k in a if k.endswith("running_var"))
