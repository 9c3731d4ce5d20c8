import pytest
import torch

from pegasus_course.checkpoints import DEFAULT_CHECKPOINT, load_score_model
from pegasus_course.generate import schedule_from_meta
from pegasus_course.nn import ScoreUNetConfig
from pegasus_course.sampling import annealed_langevin


def test_shipped_checkpoint_loads_and_samples():
    if not DEFAULT_CHECKPOINT.is_file():
        pytest.skip("no shipped checkpoint in this checkout")
    assert DEFAULT_CHECKPOINT.stat().st_size <= 15 * 2**20
    model, ckpt = load_score_model(DEFAULT_CHECKPOINT)
    assert model.config == ScoreUNetConfig.from_dict(ckpt.model_config)
    assert model.config.image_size == 32
    assert not ckpt.part("optim") and ckpt.step > 0
    assert all(torch.isfinite(p).all() for p in model.parameters())
    sched = schedule_from_meta(ckpt.meta)
    assert (sched.sigma_max, sched.sigma_min, sched.num_scales) == (50.0, 0.01, 232)
    x = annealed_langevin(lambda x, s: model(x, s), (2, 3, 32, 32), sched.sigmas()[-3:], 1, 6.2e-6,
                          generator=torch.Generator().manual_seed(0), progress=False)
    assert x.shape == (2, 3, 32, 32) and torch.isfinite(x).all()
