import numpy as np
import pytest

from tflw.errors import UnsupportedModelError
from tflw.search.resolution import resize_inputs, scaled_shape


def test_every_axis_but_the_channels_scales_and_rounds():
    assert scaled_shape((28, 28, 1), 0.75) == (21, 21, 1)
    assert scaled_shape((32, 32, 3), 0.5) == (16, 16, 3)
    assert scaled_shape((128, 3), 0.3) == (38, 3)
    assert scaled_shape((3, 3, 8), 0.1) == (1, 1, 8)


def test_images_keep_their_mean_and_a_ramp_stays_a_ramp():
    ramp = np.broadcast_to(np.arange(32, dtype=np.float32)[None, :, None, None],
                           (2, 32, 32, 3)).copy()
    small = resize_inputs(ramp, (16, 16, 3))
    assert small.shape == (2, 16, 16, 3) and small.dtype == np.float32
    inner = small[0, 2:-2, 5, 0]  # away from the edges, where the filter is clipped
    np.testing.assert_allclose(np.diff(inner), 2.0, atol=1e-4)
    assert small.mean() == pytest.approx(ramp.mean(), abs=0.05)


def test_series_resize_over_time_only():
    series = np.random.default_rng(0).normal(size=(4, 128, 3)).astype(np.float32)
    small = resize_inputs(series, (64, 3))
    assert small.shape == (4, 64, 3)
    pairs = series.reshape(4, 64, 2, 3).mean(2)
    assert np.corrcoef(small.ravel(), pairs.ravel())[0, 1] > 0.9
    assert resize_inputs(series, (128, 3)) is series


def test_a_shape_that_changes_channels_or_rank_is_refused():
    with pytest.raises(UnsupportedModelError, match=r"\(28, 28, 1\) to \(14, 14, 3\)"):
        resize_inputs(np.zeros((1, 28, 28, 1)), (14, 14, 3))
    with pytest.raises(UnsupportedModelError, match="images"):
        resize_inputs(np.zeros((1, 10)), (5,))
