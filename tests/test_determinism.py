"""experiments/determinism: two trainings of one seed in fresh processes, compared step by step."""

import pytest

from experiments import determinism
from facegan.config import Config
from conftest import TINY


def rows(*losses):
    return [dict(step=step, discriminator_loss=d, generator_loss=g) for step, (d, g) in enumerate(losses, 1)]


def test_the_first_difference_is_the_first_step_whose_losses_differ():
    same = rows((1.0, 2.0), (0.5, 3.0), (0.4, 3.5))
    assert determinism.first_difference(same, same) is None
    assert determinism.first_difference(same, rows((1.0, 2.0), (0.5, 3.0), (0.4, 3.6))) == 3
    assert determinism.first_difference(same, rows((1.0, 2.0), (0.6, 3.0), (0.4, 3.5))) == 2
    with pytest.raises(ValueError, match="logged 3 and 2 steps"):
        determinism.first_difference(same, same[:2])


@pytest.mark.slow
def test_deterministic_ops_train_the_same_losses_twice_in_fresh_processes(made_faces, cache_dir):
    config = Config(image_path=str(made_faces / "img_align_celeba"), cache_dir=cache_dir, steps=4, **TINY)
    measured = determinism.measure(config, ["deterministic ops"], show=False)
    assert [row["condition"] for row in measured] == ["deterministic ops"]
    assert measured[0]["first_different_step"] is None and measured[0]["losses_there"] == []
    assert measured[0]["precision"] == "float32" and "cores" in measured[0]["machine"]
    assert len(measured[0]["images_per_second"]) == 2 and min(measured[0]["images_per_second"]) > 0
