import keras
import numpy as np
import pytest

import tflw
from tflw.export.cmsis_nn_arena import cmsis_nn_additions, cmsis_nn_margin
from tflw.export.memory_plan import ActivationBuffer, head_with_scratch


@pytest.fixture(scope="module")
def model_bytes(tmp_path_factory):
    inputs = keras.Input((12, 12, 8))
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)  # im2col
    x = keras.layers.Conv2D(16, 1)(x)                                          # 1x1: none
    x = keras.layers.DepthwiseConv2D(3, padding="same")(x)                    # 3x3: none
    x = keras.layers.DepthwiseConv2D(5, padding="same")(x)                    # 5x5: a buffer
    x = keras.layers.AveragePooling2D(2)(x)                                   # 16 sums
    outputs = keras.layers.Dense(4)(keras.layers.Flatten()(x))
    model = keras.Model(inputs, outputs)
    data = np.random.default_rng(0).normal(size=(16, 12, 12, 8)).astype(np.float32)
    result = tflw.export(model, tmp_path_factory.mktemp("cmsis") / "out",
                         representative_data=data, minimize_arena=False)
    return result.tflite_path.read_bytes()


def test_scratch_buffers_are_cmsis_nns_by_hand(model_bytes):
    scratch = {(a.op, a.index): a.scratch_bytes for a in cmsis_nn_additions(model_bytes)}
    assert scratch[("CONV_2D", 0)] == 2 * (3 * 3 * 8) * 2      # two int16 im2col columns
    assert scratch[("CONV_2D", 1)] == 0
    assert scratch[("DEPTHWISE_CONV_2D", 2)] == 0
    assert scratch[("DEPTHWISE_CONV_2D", 3)] == 16 * 5 * 5 * 2  # 800 -> 800 (16-aligned)
    assert scratch[("AVERAGE_POOL_2D", 4)] == 16 * 4
    persistent = {a.index: a.persistent_bytes for a in cmsis_nn_additions(model_bytes)}
    assert persistent[0] == 16 + 16 and persistent[1] == 16  # OpData; a scratch handle
    assert persistent[max(persistent)] == 32                 # FULLY_CONNECTED's OpData


def test_the_margin_is_the_scratch_beyond_the_tensors_plan_and_the_per_op_state(model_bytes):
    margin = cmsis_nn_margin(model_bytes)
    assert margin["margin_bytes"] == margin["scratch_growth_bytes"] + margin["persistent_bytes"]
    assert 0 <= margin["scratch_growth_bytes"] <= 800  # at most the largest buffer


def test_scratch_in_a_gap_costs_nothing_and_above_the_peak_its_size():
    tensors = [ActivationBuffer(0, 64, 0, 1), ActivationBuffer(1, 32, 1, 2),
               ActivationBuffer(2, 16, 2, 3)]
    base = head_with_scratch(tensors, [])
    assert base == 96
    assert head_with_scratch(tensors, [ActivationBuffer(-1, 48, 3, 3)]) == base  # op 3: 80 B free
    assert head_with_scratch(tensors, [ActivationBuffer(-1, 48, 1, 1)]) == base + 48
    # with an offline plan the tensors keep their offsets and the scratch fits around them
    offsets = {0: 0, 1: 64, 2: 0}
    assert head_with_scratch(tensors, [ActivationBuffer(-1, 48, 3, 3)], offsets) == 96
