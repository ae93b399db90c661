import numpy as np
import pytest

import tflw
from tflw.pruning import prune_channels
from tflw.pruning.one_shot import masked_model, set_keep


def test_prune_channels_cuts_each_group_and_computes_the_masked_function():
    model = tflw.models.resnet8(input_shape=(16, 16, 3))
    x = np.random.default_rng(0).random((4, 16, 16, 3)).astype(np.float32)
    keep = {"stem_conv": 0.5, "stack2_a_conv": 0.25}
    small = prune_channels(model, keep)
    assert small.get_layer("stem_conv").filters == 8
    assert small.get_layer("stack1_b_conv").filters == 8  # tied to the stem by the Add
    assert small.get_layer("stack2_a_conv").filters == 8
    masked = masked_model(model)
    set_keep(masked, keep)
    np.testing.assert_allclose(small.predict(x, verbose=0), masked.predict(x, verbose=0),
                               atol=1e-5)


def test_an_unknown_group_is_named():
    with pytest.raises(ValueError, match="stem_conv"):
        prune_channels(tflw.models.resnet8(input_shape=(16, 16, 3)), {"nope": 0.5})
