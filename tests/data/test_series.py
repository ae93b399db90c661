import numpy as np
import pytest

from tflw.data.series import fixed_length
from tflw.errors import InputMismatchError


def test_nan_padded_series_are_resampled_over_their_real_length():
    series = np.full((2, 10, 2), np.nan, np.float32)
    series[0, :5] = np.stack([np.arange(5), -np.arange(5)], axis=1)   # 0..4 over 5 steps
    series[1, :] = 7.0
    out = fixed_length(series, 9)
    assert out.shape == (2, 9, 2) and not np.isnan(out).any()
    np.testing.assert_allclose(out[0, :, 0], np.linspace(0, 4, 9), atol=1e-6)
    np.testing.assert_allclose(out[0, :, 1], -np.linspace(0, 4, 9), atol=1e-6)
    np.testing.assert_allclose(out[1], 7.0)


def test_a_series_without_any_valid_step_is_named():
    series = np.zeros((3, 4, 3), np.float32)
    series[2] = np.nan
    with pytest.raises(InputMismatchError, match="series 2"):
        fixed_length(series, 8)
