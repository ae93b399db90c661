"""Shift convolution: a zero-MAC, zero-weight move that TFLite-Micro runs as an exact copy."""

from itertools import groupby

import keras
import numpy as np

import tflw
from tflw.analysis import keras_costs
from tflw.export.tflm import run_tflm
from tflw.models import Shift, SparseShift, shift_block, shift_residual_block
from tflw.models.shift import DIRECTIONS, group_shift_channels


def moved(x: np.ndarray, moves) -> np.ndarray:
    """Each channel moved by its own (dy, dx), zeros shifted in."""
    out = np.zeros_like(x)
    height, width = x.shape[1:3]
    for channel, (dy, dx) in enumerate(moves):
        for i in range(height):
            for j in range(width):
                if 0 <= i - dy < height and 0 <= j - dx < width:
                    out[:, i, j, channel] = x[:, i - dy, j - dx, channel]
    return out


def shifted(x: np.ndarray) -> np.ndarray:
    """Each of nine channel groups moved one pixel by its direction, zeros shifted in."""
    groups = np.array_split(np.arange(x.shape[-1]), len(DIRECTIONS))
    return moved(x, [move for move, channels in zip(DIRECTIONS, groups) for _ in channels])


def test_each_channel_group_moves_one_pixel_in_its_direction():
    x = np.random.default_rng(0).normal(size=(2, 5, 6, 11)).astype("float32")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(Shift()(x)), shifted(x))


def test_the_shift_is_an_exact_copy_of_the_int8_codes_in_tflite_micro(tmp_path):
    inputs = keras.Input((8, 8, 18))
    model = keras.Model(inputs, Shift()(inputs))
    x = np.random.default_rng(0).uniform(-1, 1, (16, 8, 8, 18)).astype("float32")
    qat = tflw.quantize_model(model, calibration_data=x)
    result = tflw.export(qat, tmp_path / "shift", sample_inputs=x)
    assert {op.name for op in result.info.ops} <= {"PAD", "STRIDED_SLICE", "CONCATENATION"}
    source, target = result.info.inputs[0], result.info.outputs[0]
    assert (source.scale, source.zero_point) == (target.scale, target.zero_point)
    codes = source.quantize(x)
    out = run_tflm(result.tflite_path.read_bytes(), [codes], 1).outputs[0]
    # zeros shifted in are the zero point's code: the real value 0
    expected = shifted(codes.astype(np.int32) - source.zero_point) + source.zero_point
    np.testing.assert_array_equal(out, expected)


def test_a_shift_block_costs_only_its_1x1_convolution():
    inputs = keras.Input((8, 8, 16))
    model = keras.Model(inputs, shift_block(inputs, 32))
    assert keras_costs(model) == (16 * 32 + 32, 8 * 8 * 32 * 16)


def test_a_shift_with_one_move_per_channel_moves_each_channel():
    moves = [(0, 0), (0, 0), (2, -1), (0, 1), (0, 1), (-1, 0)]
    x = np.random.default_rng(0).normal(size=(2, 5, 6, 6)).astype("float32")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(Shift(moves)(x)), moved(x, moves))


def test_sparse_shift_moves_by_its_rounded_shifts_with_the_bilinear_gradient():
    layer = SparseShift(reach=1, l1=0.0)
    x = np.random.default_rng(0).normal(size=(2, 5, 6, 4)).astype("float32")
    layer.build(x.shape)
    layer.shifts.assign(np.array([[0.2, -0.3], [0.7, 0.0], [-0.6, 1.8], [0.1, 0.55]], "float32"))
    assert layer.moves().tolist() == [[0, 0], [1, 0], [-1, 1], [0, 1]]
    assert layer.moved_fraction() == 0.75
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x)),
                               moved(x, layer.moves()), atol=1e-6)
    import tensorflow as tf
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(layer(x) * x)
    gradient = tape.gradient(total, layer.shifts.value).numpy()
    # bilinear: d/ds of (1 - s) * x + s * x[moved by 1] summed against x, for channel 0's rows
    x0 = x[..., 0]
    down = np.zeros_like(x0)
    down[:, 1:] = x0[:, :-1]
    np.testing.assert_allclose(gradient[0, 0], np.sum((down - x0) * x0), rtol=1e-4)
    assert gradient[2, 1] == 0.0  # clipped at the reach: no gradient beyond it


def test_the_l1_penalty_leaves_most_channels_in_place():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 16))
    shift = SparseShift(l1=3e-2, name="shift")
    model = keras.Model(inputs, keras.layers.Conv2D(8, 1)(shift(inputs)))
    x = np.random.default_rng(0).normal(size=(64, 8, 8, 16)).astype("float32")
    before = shift.moved_fraction()
    model.compile(keras.optimizers.Adam(5e-2), "mse")
    model.fit(x, np.zeros((64, 8, 8, 8), "float32"), epochs=20, verbose=0)
    assert before > 0.5 and shift.moved_fraction() < 0.2


def test_a_quantized_sparse_shift_is_slices_and_an_exact_copy_in_tflite_micro(tmp_path):
    inputs = keras.Input((8, 8, 12))
    shift = SparseShift(l1=0.0, seed=3, name="shift")
    model = keras.Model(inputs, shift(inputs))
    # 12 runs of equal moves: more than one CONCATENATION takes in TFLite-Micro
    assert len(list(groupby(map(tuple, shift.moves())))) == 12
    x = np.random.default_rng(0).uniform(-1, 1, (16, 8, 8, 12)).astype("float32")
    qat = tflw.quantize_model(model, calibration_data=x)
    assert isinstance(qat.get_layer("shift"), Shift)
    result = tflw.export(qat, tmp_path / "sparse", sample_inputs=x)
    assert {op.name for op in result.info.ops} <= {"PAD", "STRIDED_SLICE", "CONCATENATION"}
    source = result.info.inputs[0]
    codes = source.quantize(x)
    out = run_tflm(result.tflite_path.read_bytes(), [codes], 1).outputs[0]
    expected = moved(codes.astype(np.int32) - source.zero_point, shift.moves()) + source.zero_point
    np.testing.assert_array_equal(out, expected)
    assert 0 < shift.moved_fraction() < 1


def test_shifts_save_and_load_with_their_moves(tmp_path):
    inputs = keras.Input((6, 6, 4))
    sparse = SparseShift(seed=1, name="sparse")(inputs)
    y = Shift([(0, 1), (1, 1), (0, 0), (-1, 0)], name="fixed")(sparse)
    model = keras.Model(inputs, y)
    model.save(tmp_path / "shifts.keras")
    loaded = keras.saving.load_model(tmp_path / "shifts.keras")
    x = np.random.default_rng(0).normal(size=(2, 6, 6, 4)).astype("float32")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.get_layer("fixed").moves == [(0, 1), (1, 1), (0, 0), (-1, 0)]


def test_sparse_shift_channels_are_grouped_by_move_without_changing_the_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 6))
    x = shift_residual_block(inputs, 8, expansion=3, sparse=True, name="csc")
    x = keras.layers.DepthwiseConv2D(3, padding="same")(x)
    model = keras.Model(inputs, keras.layers.Dense(4)(x))
    for layer in model.layers:  # BatchNorm statistics away from 0 and 1
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.set_weights([w + np.random.default_rng(1).uniform(0.1, 1, w.shape)
                               for w in layer.get_weights()])
    shift = model.get_layer("csc_shift")
    moves = [tuple(m) for m in shift.moves()]
    assert len(list(groupby(moves))) > len(set(moves))  # scattered: more runs than moves
    grouped = group_shift_channels(model)
    x = np.random.default_rng(0).normal(size=(4, 8, 8, 6)).astype("float32")
    np.testing.assert_allclose(grouped.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=1e-5)
    assert [tuple(m) for m in shift.moves()] == moves  # the model given is left as it was
    regrouped = [tuple(m) for m in grouped.get_layer("csc_shift").moves()]
    assert sorted(regrouped) == sorted(moves)
    assert len(list(groupby(regrouped))) == len(set(moves))
    qat = tflw.quantize_model(model, calibration_data=x)
    shift = qat.get_layer("csc_shift")
    assert len(list(groupby(shift.channel_moves(24)))) == len(set(moves))


def test_a_sparse_shift_on_the_models_input_keeps_its_order():
    inputs = keras.Input((8, 8, 12))
    model = keras.Model(inputs, keras.layers.Conv2D(4, 1)(SparseShift(seed=3, name="s")(inputs)))
    assert group_shift_channels(model) is not model
    moves = model.get_layer("s").moves().tolist()
    assert group_shift_channels(model).get_layer("s").moves().tolist() == moves
