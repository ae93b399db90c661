"""A corpus of bad inputs: each must raise the right tflw error, naming the culprit,
and leave nothing half-written behind."""

import dataclasses
import os
from pathlib import Path

import keras
import numpy as np
import pytest

import tflw
from tflw import errors
from tflw.export.convert import to_tflite


def tiny(name: str = "tiny") -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 6, 2), name="pixels")
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="classifier")(x), name=name)


def sample(count: int = 8) -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 1, (count, 6, 6, 2)).astype("float32")


def qat() -> keras.Model:
    return tflw.quantize_model(tiny(), calibration_data=sample(32))


def with_layer(layer: keras.layers.Layer, shape=(6, 6, 2)) -> keras.Model:
    inputs = keras.Input(shape)
    return keras.Model(inputs, layer(inputs))


class Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(2)

    def call(self, x):
        return self.dense(x)


def nested_twice() -> keras.Model:
    inner_in = keras.Input((4,))
    inner = keras.Model(inner_in, keras.layers.Dense(4)(inner_in), name="block")
    inputs = keras.Input((4,))
    return keras.Model(inputs, inner(inner(inputs)))


def triple_product() -> keras.Model:
    inputs = keras.Input((4,))
    return keras.Model(inputs, keras.layers.Multiply(name="triple")([inputs, inputs, inputs]))


def batch_norm_after_relu() -> keras.Model:
    inputs = keras.Input((6, 6, 2))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)
    return keras.Model(inputs, keras.layers.BatchNormalization(name="late_bn")(x))


def nan_weights() -> keras.Model:
    model = tiny()
    kernel = model.get_layer("conv").kernel
    kernel.assign(np.where(np.arange(kernel.numpy().size).reshape(kernel.shape) == 0, np.nan, kernel.numpy()))
    return model


def dynamic_input() -> keras.Model:
    inputs = keras.Input((None, None, 2), name="frames")
    x = keras.layers.Conv2D(4, 3)(inputs)
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))


def channel_pruned() -> keras.Model:
    return tflw.prune_model(tiny(), tflw.ConstantSparsity(0.5), structure="channels", skip=[])


def vanishing_logits() -> keras.Model:
    """Logits spanning ~1e-9, as in a random-init MobileNetV2: TFLite-Micro's softmax aborts."""
    model = with_layer(keras.layers.Dense(3, activation="softmax", name="head"), (4,))
    kernel = model.get_layer("head").kernel
    kernel.assign(kernel.numpy() * 1e-9)
    return model


def export_to(tmp_path: Path, model_factory, **kwargs):
    return lambda: tflw.export(model_factory(), tmp_path / "out", **kwargs)


def existing_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "keep.txt").write_text("user file")
    return folder


# id: (action(tmp_path) -> callable, error class, text the message must contain)
CASES = {
    "subclassed model": (lambda t: lambda: tflw.quantize_model(Subclassed()),
                         errors.UnsupportedModelError, "Functional API"),
    "not a model": (lambda t: lambda: tflw.quantize_model(np.zeros(3)),
                    errors.UnsupportedModelError, "ndarray"),
    "sequential without input": (
        lambda t: lambda: tflw.quantize_model(keras.Sequential([keras.layers.Dense(2)])),
        errors.UnsupportedModelError, "keras.Input"),
    "sub-model called twice": (lambda t: lambda: tflw.quantize_model(nested_twice()),
                               errors.UnsupportedModelError, "block"),
    "lstm layer": (lambda t: lambda: tflw.quantize_model(
        with_layer(keras.layers.LSTM(4, name="memory"), (5, 3))),
        errors.UnsupportedLayerError, "memory"),
    "lambda layer": (lambda t: lambda: tflw.quantize_model(
        with_layer(keras.layers.Lambda(lambda x: x * 2, name="double"))),
        errors.UnsupportedLayerError, "double"),
    "3d conv": (lambda t: lambda: tflw.quantize_model(
        with_layer(keras.layers.Conv3D(4, 3, name="volume"), (6, 6, 6, 2))),
        errors.UnsupportedLayerError, "volume"),
    "channels_first conv": (lambda t: lambda: tflw.quantize_model(
        with_layer(keras.layers.Conv2D(4, 1, data_format="channels_first", name="nchw"))),
        errors.UnsupportedLayerError, "nchw"),
    "channels_first pooling": (lambda t: lambda: tflw.quantize_model(
        with_layer(keras.layers.GlobalAveragePooling2D(data_format="channels_first", name="gap_nchw"))),
        errors.UnsupportedLayerError, "gap_nchw"),
    "multiply of three tensors": (lambda t: lambda: tflw.quantize_model(triple_product()),
                                  errors.UnsupportedLayerError, "triple"),
    "batch norm after activation": (lambda t: lambda: tflw.quantize_model(batch_norm_after_relu()),
                                    errors.UnsupportedLayerError, "late_bn"),
    "elu activation": (lambda t: lambda: tflw.quantize_model(
        with_layer(keras.layers.Dense(3, activation="elu", name="elu_dense"), (4,))),
        errors.UnsupportedLayerError, "elu_dense"),
    "leaky relu": (lambda t: lambda: tflw.quantize_model(
        with_layer(keras.layers.ReLU(negative_slope=0.1, name="leaky"))),
        errors.UnsupportedLayerError, "leaky"),
    "channel masks not stripped": (lambda t: lambda: tflw.quantize_model(channel_pruned()),
                                   errors.UnsupportedLayerError, "strip_pruning"),
    "n:m on indivisible channels": (lambda t: lambda: tflw.prune_model(
        tiny(), tflw.ConstantSparsity(0.5), structure="2:4", skip=[]),
        errors.UnsupportedLayerError, "conv"),
    "float model without data": (lambda t: export_to(t, tiny),
                                 errors.MissingRepresentativeDataError, "representative_data"),
    "uncalibrated qat": (lambda t: export_to(t, lambda: tflw.quantize_model(tiny())),
                         errors.UncalibratedModelError, "range"),
    "nan weights": (lambda t: export_to(t, nan_weights, representative_data=sample()),
                    errors.NonFiniteError, "conv/kernel"),
    "nan representative data": (lambda t: export_to(
        t, tiny, representative_data=np.where(sample() > 0.9, np.nan, sample())),
        errors.NonFiniteError, "representative_data"),
    "wrong data shape": (lambda t: export_to(t, tiny, representative_data=sample()[:, :5]),
                         errors.InputMismatchError, "pixels"),
    "empty data": (lambda t: export_to(t, tiny, representative_data=sample()[:0]),
                   errors.InputMismatchError, "empty"),
    "wrong sample inputs shape": (lambda t: export_to(t, qat, sample_inputs=np.zeros((2, 6, 6))),
                                  errors.InputMismatchError, "sample_inputs"),
    "dynamic input shape": (lambda t: export_to(t, dynamic_input, representative_data=sample()),
                            errors.DynamicShapeError, "frames"),
    "softmax of vanishing logits": (lambda t: export_to(
        t, vanishing_logits, representative_data=sample()[:, 0, 0, :].repeat(2, axis=1)),
        errors.DegenerateQuantizationError, "head_1/MatMul"),
    "unknown board": (lambda t: export_to(t, qat, board="arduino_uno"),
                      errors.UnknownBoardError, "nano33ble"),
    "model too large for the board": (lambda t: export_to(
        t, qat, board=dataclasses.replace(tflw.boards.get("pico"), ram_bytes=41 * 1024)),
        errors.ModelTooLargeError, "more than the 1,024 B left"),
    "missing model file": (lambda t: lambda: tflw.export(t / "nope.keras", t / "out"),
                           errors.ModelFileError, "nope.keras"),
    "not a keras file": (lambda t: (t.joinpath("bad.keras").write_text("junk"),
                                    lambda: tflw.export(t / "bad.keras", t / "out"))[1],
                         errors.ModelFileError, "bad.keras"),
    "output folder exists": (lambda t: (existing_folder(t), export_to(t, qat))[1],
                             errors.OutputDirectoryError, "overwrite=True"),
    "output path is a file": (lambda t: (t.joinpath("out").write_text("x"), export_to(t, qat))[1],
                              errors.OutputDirectoryError, "not a folder"),
    "verify a missing file": (lambda t: lambda: tflw.verify(t / "none.tflite", sample()),
                              errors.ModelFileError, "none.tflite"),
    "verify a non-flatbuffer": (lambda t: lambda: tflw.verify(b"not a flatbuffer at all", sample()),
                                errors.ConversionError, "flatbuffer"),
    "verify with nan inputs": (lambda t: lambda: tflw.verify(
        to_tflite(qat()), np.full((2, 6, 6, 2), np.nan, np.float32)),
        errors.NonFiniteError, "NaN"),
    "verify with two arrays for one input": (lambda t: lambda: tflw.verify(
        to_tflite(qat()), [sample(), sample()]), errors.InputMismatchError, "1 input"),
    "interpreter crash": (lambda t: lambda: tflw.verify(b"TFL3" + bytes(60), np.zeros((1, 4))),
                          errors.TflwError, ""),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_gets_a_named_tflw_error_and_no_partial_output(case, tmp_path):
    make_action, error_class, text = CASES[case]
    action = make_action(tmp_path)
    before = {p: p.stat().st_mtime for p in tmp_path.rglob("*")}
    with pytest.raises(error_class) as raised:
        action()
    assert text in str(raised.value)
    after = {p for p in tmp_path.rglob("*")}
    assert after == set(before), f"files appeared or vanished: {after ^ set(before)}"
    assert not any(".tflw-" in os.fspath(p) for p in after)


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 25
