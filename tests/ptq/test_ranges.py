import numpy as np
import pytest

from tflw.ptq.ranges import TensorSample, quantization_mse


def _sample(values: np.ndarray) -> TensorSample:
    sample = TensorSample()
    sample.add(values, share=values.size, rng=np.random.default_rng(0))
    return sample


def test_minmax_is_the_exact_range_widened_to_zero():
    sample = _sample(np.array([0.5, 2.0, 3.5], np.float32))
    assert sample.range("minmax") == (0.0, 3.5)


def test_mse_clips_outliers_and_quantizes_with_less_error_than_minmax():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(size=100_000), [60.0, -60.0]]).astype(np.float32)
    sample = _sample(values)
    minmax, mse = sample.range("minmax"), sample.range("mse")
    assert minmax == (-60.0, 60.0) and mse[1] < 0.9 * minmax[1]
    assert quantization_mse(values, *mse) < 0.9 * quantization_mse(values, *minmax)
    low, high = sample.range("percentile")
    assert -60.0 < low < -3.0 and 3.0 < high < 60.0


def test_an_all_zero_tensor_gets_the_narrowest_range_and_a_bad_method_is_refused():
    sample = _sample(np.zeros(100, np.float32))
    low, high = sample.range("mse")
    assert low == 0.0 and high > 0.0
    with pytest.raises(ValueError, match="minmax, percentile, mse"):
        sample.range("kl")
