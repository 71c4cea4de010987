"""speed: the FLOP count bench reports beside its timings, checked against the architecture by hand."""

import pytest

from experiments import speed
from facegan.config import Config, DISCRIMINATOR_NORMS
from facegan.gan import DCGAN

# The default generator layer by layer: 2 × multiply-adds per image (input pixels × kernel for a transposed
# convolution): project 100 → 4·4·512, then 4→8 (512→256), 8→16 (256→128), 16→32 (128→64),
# 32→64 (64→3).
GENERATOR = 2 * (100 * 4 * 4 * 512 + 4 * 4 * 25 * 512 * 256 + 8 * 8 * 25 * 256 * 128 + 16 * 16 * 25 * 128 * 64
                 + 32 * 32 * 25 * 64 * 3)
# The default discriminator: 64→32 (3→64), 32→16 (64→128), 16→8 (128→256), 8→4 (256→512) at the output
# resolution, then the logit from 4·4·512.
DISCRIMINATOR = 2 * (32 * 32 * 25 * 3 * 64 + 16 * 16 * 25 * 64 * 128 + 8 * 8 * 25 * 128 * 256
                     + 4 * 4 * 25 * 256 * 512 + 4 * 4 * 512)


@pytest.mark.parametrize("norm", DISCRIMINATOR_NORMS)
def test_the_flop_count_matches_the_architecture_with_either_discriminator(norm):
    gan = DCGAN.from_config(Config(discriminator_norm=norm, ema_decay=0, kernel_size=5, reuse_fakes=False))
    assert speed.forward_flops(gan.generator) == GENERATOR
    assert speed.forward_flops(gan.discriminator) == DISCRIMINATOR
    # D step: G forward, then D forward (1×) and backward (2×) on a real and a fake face: G + 6 D.
    # G step: G and D forward, D backward to its input only (1×), G backward (2×): 3 G + 2 D.
    assert speed.training_flops_per_image(gan) == 4 * GENERATOR + 8 * DISCRIMINATOR


def test_kernel_4_and_reused_fakes_count_16_25ths_of_each_convolution_and_one_generator_forward_less():
    gan = DCGAN.from_config(Config(ema_decay=0, kernel_size=4, reuse_fakes=True))
    generator = 2 * 100 * 4 * 4 * 512 + (GENERATOR - 2 * 100 * 4 * 4 * 512) * 16 // 25
    discriminator = 2 * 4 * 4 * 512 + (DISCRIMINATOR - 2 * 4 * 4 * 512) * 16 // 25
    assert speed.forward_flops(gan.generator) == generator
    assert speed.forward_flops(gan.discriminator) == discriminator
    assert speed.training_flops_per_image(gan) == 3 * generator + 8 * discriminator  # 2.29 GFLOP
