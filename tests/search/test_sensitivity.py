import numpy as np
import pytest

from tflw.search.sensitivity import round_to_bits


@pytest.mark.parametrize("bits", [2, 4])
def test_each_channel_gets_at_most_2_to_the_bits_levels_and_less_error_than_plain_max(bits):
    kernel = np.random.default_rng(0).standard_normal((3, 3, 8, 16)).astype(np.float32)
    rounded = round_to_bits(kernel, bits, 16).reshape(-1, 16)
    assert max(len(np.unique(rounded[:, c])) for c in range(16)) <= 2**bits
    step = np.abs(kernel.reshape(-1, 16)).max(0) / (2 ** (bits - 1) - 1)
    plain = np.clip(np.round(kernel.reshape(-1, 16) / step), -(2 ** (bits - 1)),
                    2 ** (bits - 1) - 1) * step
    flat = kernel.reshape(-1, 16)
    assert ((rounded - flat) ** 2).sum() <= ((plain - flat) ** 2).sum()
