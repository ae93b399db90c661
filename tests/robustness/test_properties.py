"""Property tests: random small models through the whole path, and the firmware writers."""

import re
import shutil

import keras
import numpy as np
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

import tflw
from tests.conftest import gcc_round_trip
from tflw.errors import TflwError
from tflw.export.c_array import c_array_files
from tflw.export.c_names import C_KEYWORDS, MAX_LENGTH, c_identifier
from tflw.export.convert import to_tflite

BLOCKS = ("conv", "conv_bn", "depthwise", "residual", "concat", "max_pool", "avg_pool", "pad",
          "grouped", "hard_swish", "gate")


@st.composite
def small_models(draw):
    """A random Functional model of the supported layers, with the data to calibrate it."""
    seed = draw(st.integers(0, 2**16))
    keras.utils.set_random_seed(seed)  # the weights too, so that a failure replays exactly
    size = draw(st.sampled_from([6, 8, 10]))
    channels = draw(st.integers(1, 4))
    inputs = keras.Input((size, size, channels))
    x = inputs
    if draw(st.booleans()):
        x = keras.layers.Rescaling(draw(st.sampled_from([1.0, 1 / 255.0])))(x)
    for block in draw(st.lists(st.sampled_from(BLOCKS), min_size=1, max_size=4)):
        width = draw(st.sampled_from([2, 4, 8]))
        activation = draw(st.sampled_from(["linear", "relu", "relu6"]))
        if block in ("conv", "conv_bn"):
            x = keras.layers.Conv2D(width, draw(st.sampled_from([1, 3])), padding="same",
                                    activation=None if block == "conv_bn" else activation)(x)
            if block == "conv_bn":
                x = keras.layers.BatchNormalization()(x)
                x = keras.layers.Activation(activation)(x)
        elif block == "depthwise":
            x = keras.layers.DepthwiseConv2D(3, padding="same", activation=activation)(x)
        elif block == "residual":
            y = keras.layers.Conv2D(x.shape[-1], 3, padding="same")(x)
            x = keras.layers.ReLU()(keras.layers.Add()([x, y]))
        elif block == "concat":
            y = keras.layers.Conv2D(width, 1, activation="relu")(x)
            x = keras.layers.Concatenate()([x, y])
        elif block in ("max_pool", "avg_pool") and x.shape[1] >= 4:
            pool = keras.layers.MaxPooling2D if block == "max_pool" else keras.layers.AveragePooling2D
            x = pool(2)(x)
        elif block == "pad":
            x = keras.layers.ZeroPadding2D()(x)
        elif block == "grouped" and x.shape[-1] % 2 == 0:
            x = keras.layers.Conv2D(width, 1, groups=2, activation=activation)(x)
        elif block == "hard_swish":
            x = keras.layers.Activation("hard_swish")(keras.layers.Conv2D(width, 1)(x))
        elif block == "gate":  # squeeze-excite: MEAN, LOGISTIC, MUL
            gate = keras.layers.GlobalAveragePooling2D(keepdims=True)(x)
            gate = keras.layers.Conv2D(x.shape[-1], 1, activation="sigmoid")(gate)
            x = keras.layers.Multiply()([x, gate])
    if draw(st.booleans()):
        x = keras.layers.GlobalAveragePooling2D()(x)
    else:
        x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(draw(st.integers(2, 6)))(x)
    if draw(st.booleans()):
        outputs = keras.layers.Softmax()(outputs)
    data = np.random.default_rng(seed).uniform(-1, 1, (64, size, size, channels)).astype("float32")
    return keras.Model(inputs, outputs), data


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_models())
def test_random_models_verify_within_one_lsb_or_raise_a_tflw_error(model_and_data):
    model, data = model_and_data
    note(" -> ".join(f"{type(layer).__name__}{tuple(layer.output.shape)[1:]}" for layer in model.layers))
    try:
        qat = tflw.quantize_model(model, calibration_data=data)
        result = tflw.verify(to_tflite(qat), data, reference=qat)
    except TflwError:
        return
    assert result.max_lsb_difference <= 1.001, result.max_lsb_difference


@given(st.text(max_size=100), st.sets(st.text(max_size=10), max_size=5))
def test_c_identifier_is_always_a_valid_unique_identifier(name, taken):
    identifier = c_identifier(name, taken=taken)
    assert re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", identifier)
    assert identifier not in C_KEYWORDS and identifier not in taken
    assert len(identifier) <= MAX_LENGTH
    assert identifier == c_identifier(name, taken=taken)


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
@settings(max_examples=10, deadline=None)
@given(st.binary(max_size=3000))
def test_c_array_round_trips_arbitrary_bytes_through_gcc(tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("c_array")
    assert gcc_round_trip(c_array_files(data, model_name="any\nname */ /*"), folder) == data
