"""`tflw demo`: the whole path on bundled MNIST digits, in a few minutes on a laptop CPU.

Trains a small CNN (conv + BatchNorm + ReLU, depthwise, residual add, dense), fine-tunes it
with int8 QAT, exports and verifies it in TFLite-Micro, and prints one table.
"""

from typing import Callable

import keras
import numpy as np

from tflw.data import load_mnist_subset
from tflw.export import export, verify
from tflw.quantization import quantize_model


def build_demo_model(keras_module=keras, width: int = 16,
                     input_shape: tuple = (28, 28, 1)) -> keras.Model:
    """A 5-layer MCU-sized CNN for 28x28 digits, with every pattern QAT must handle.

    Args:
        keras_module: `keras` (Keras 3), or `tf_keras` to build the same network for
            tfmot, as the benchmarks do.
        width: channels of the first block (the last conv has twice as many).
        input_shape: of the digits (smaller ones for a search over input resolution).
    """
    layers = keras_module.layers
    inputs = keras_module.Input(input_shape, name="image")
    x = layers.Conv2D(width, 3, strides=2, padding="same", use_bias=False)(inputs)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    branch = layers.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
    branch = layers.BatchNormalization()(branch)
    branch = layers.ReLU(6.0)(branch)
    branch = layers.Conv2D(width, 1, use_bias=False)(branch)
    branch = layers.BatchNormalization()(branch)
    x = layers.Add()([x, branch])
    x = layers.ReLU()(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(2 * width, 3, padding="same", activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.1)(x)
    outputs = layers.Dense(10, name="logits")(x)
    return keras_module.Model(inputs, outputs, name="tflw_demo_cnn")


def _compiled(model: keras.Model, learning_rate: float) -> keras.Model:
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def run_demo(
    out_dir: str = "tflw-demo",
    float_epochs: int = 12,
    qat_epochs: int = 3,
    overwrite: bool = True,
    progress: Callable[[str], None] = print,
) -> dict:
    """Train, QAT, export and verify; returns the numbers of the printed table."""
    keras.utils.set_random_seed(0)
    (x_train, y_train), (x_test, y_test) = load_mnist_subset()
    verbose = 2 if progress is print else 0

    progress(f"[1/4] training the float CNN ({float_epochs} epochs, {len(x_train)} digits)")
    model = _compiled(build_demo_model(), 3e-3)
    model.fit(x_train, y_train, epochs=float_epochs, batch_size=64, verbose=verbose)
    float_accuracy = model.evaluate(x_test, y_test, verbose=0)[1]

    progress(f"[2/4] int8 quantization-aware fine-tuning ({qat_epochs} epochs)")
    qat = _compiled(quantize_model(model), 5e-4)
    qat.fit(x_train, y_train, epochs=qat_epochs, batch_size=64, verbose=verbose)
    qat_accuracy = qat.evaluate(x_test, y_test, verbose=0)[1]

    progress(f"[3/4] exporting to {out_dir}/ (convert, measure arena, write sketch)")
    result = export(qat, out_dir, sample_inputs=x_test[:200], name="tflw_demo", overwrite=overwrite)

    progress(f"[4/4] running all {len(x_test)} test digits in TFLite-Micro")
    check = verify(result.tflite_path, x_test, reference=qat)
    device_accuracy = float(np.mean(check.outputs[0].argmax(-1) == y_test))
    numbers = {
        "float_accuracy": float(float_accuracy),
        "qat_accuracy": float(qat_accuracy),
        "tflm_int8_accuracy": device_accuracy,
        "argmax_agreement": check.argmax_agreement,
        "max_lsb_difference": check.max_lsb_difference,
        "flatbuffer_bytes": result.flatbuffer_bytes,
        "arena_bytes": result.arena_bytes,
        "out_dir": str(result.out_dir),
    }
    progress(format_table(numbers))
    return numbers


def format_table(numbers: dict) -> str:
    rows = [
        ("float accuracy (Keras)", f"{numbers['float_accuracy']:.2%}"),
        ("QAT accuracy (Keras)", f"{numbers['qat_accuracy']:.2%}"),
        ("int8 accuracy (TFLite-Micro)", f"{numbers['tflm_int8_accuracy']:.2%}"),
        ("QAT vs TFLite-Micro argmax agreement", f"{numbers['argmax_agreement']:.2%}"),
        ("QAT vs TFLite-Micro max difference", f"{numbers['max_lsb_difference']:.0f} LSB"),
        ("flash (flatbuffer)", f"{numbers['flatbuffer_bytes']:,} B"),
        ("RAM (tensor arena, measured)", f"{numbers['arena_bytes']:,} B"),
    ]
    width = max(len(label) for label, _ in rows)
    lines = [f"  {label:<{width}}  {value:>10}" for label, value in rows]
    return "\n".join(["", *lines, "", f"  firmware: {numbers['out_dir']}/arduino/"])
