"""Shared fixtures: tiny models and the bundled MNIST subset (the real datasets in
../shared/data are for the benchmarks, read through benchmarks/shared_data.py)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is first imported

import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import textwrap  # noqa: E402
from pathlib import Path  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


# TensorFlow fixes its logical devices at start-up, so two-replica runs get a process.
TWO_CPU_REPLICAS = """
import json, os
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras, tflw
keras.utils.set_random_seed(0)
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
"""


def run_with_two_replicas(script: str) -> dict:
    """Run `script` after TWO_CPU_REPLICAS in a new Python; return the JSON it prints last."""
    done = subprocess.run([sys.executable, "-c", TWO_CPU_REPLICAS + textwrap.dedent(script)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def gcc_round_trip(c_files: dict, folder: Path) -> bytes:
    """Compile `model_data.cc` (as C11) with a program that writes g_model_data back out."""
    for name, text in c_files.items():
        (folder / name).write_text(text)
    (folder / "model_data.c").write_text(c_files["model_data.cc"])
    (folder / "main.c").write_text(
        '#include <stdio.h>\n#include "model_data.h"\n'
        "int main(int c, char** v) { FILE* f = fopen(v[1], \"wb\");\n"
        "  fwrite(g_model_data, 1, g_model_data_len, f); return fclose(f); }\n"
    )
    binary = folder / "dump"
    subprocess.run(["gcc", "-std=c11", f"-I{folder}", str(folder / "main.c"),
                    str(folder / "model_data.c"), "-o", str(binary)], check=True)
    subprocess.run([str(binary), str(folder / "copy.bin")], check=True)
    return (folder / "copy.bin").read_bytes()


def all_layers_model() -> keras.Model:
    """A small model using every layer the spine must quantize."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((12, 12, 3), name="pixels")
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    y = keras.layers.DepthwiseConv2D(3, padding="same")(x)
    y = keras.layers.BatchNormalization()(y)
    y = keras.layers.ReLU(6.0)(y)
    y = keras.layers.Conv2D(8, 1)(y)
    x = keras.layers.Add()([x, y])
    x = keras.layers.Activation("relu")(x)
    x = keras.layers.SeparableConv2D(8, 3, padding="same", activation="relu")(x)
    a = keras.layers.MaxPooling2D()(x)
    b = keras.layers.AveragePooling2D(2)(x)
    x = keras.layers.Concatenate()([a, b])
    x = keras.layers.ZeroPadding2D()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.1)(x)
    x = keras.layers.Reshape((16,))(x)
    x = keras.layers.Dense(12, activation="relu")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(10, name="classifier")(x)
    outputs = keras.layers.Softmax()(x)
    return randomize_batch_norms(keras.Model(inputs, outputs, name="all_layers"))


def randomize_biases(model: keras.Model, seed: int = 0) -> keras.Model:
    """Give every bias trained-looking values (the converter drops an all-zero one, which a
    trained model does not have)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if getattr(layer, "bias", None) is not None:
            layer.bias.assign(rng.normal(0, 0.1, layer.bias.shape))
    return model


def randomize_batch_norms(model: keras.Model, seed: int = 0) -> keras.Model:
    """Give every BatchNormalization trained-looking statistics, so folding is exercised."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(rng.normal(0, 0.2, layer.moving_mean.shape))
            layer.moving_variance.assign(rng.uniform(0.5, 2, layer.moving_variance.shape))
            layer.gamma.assign(rng.uniform(0.2, 1.5, layer.gamma.shape))
            layer.beta.assign(rng.normal(0, 0.3, layer.beta.shape))
    return model


@pytest.fixture(scope="session")
def pixels() -> np.ndarray:
    return np.random.default_rng(1).uniform(0, 255, (300, 12, 12, 3)).astype("float32")


@pytest.fixture(scope="session")
def mnist():
    from tflw.data import load_mnist_subset

    return load_mnist_subset()


@pytest.fixture(scope="session")
def demo_cnn_w8(mnist):
    """The demo CNN (conv, depthwise, residual ADD, max pool, mean, dense) at width 8,
    one float epoch on 1,000 digits."""
    from tflw.demo import build_demo_model

    (x, y), _ = mnist
    keras.utils.set_random_seed(0)
    model = build_demo_model(width=8)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x[:1000], y[:1000], epochs=1, verbose=0)
    return model


@pytest.fixture(scope="session")
def trained_demo_w8(mnist):
    """The demo CNN at width 8, two float epochs on 3,000 digits, its BatchNorm statistics
    re-estimated on 512 (two short epochs leave the moving averages far off)."""
    from tflw.demo import build_demo_model
    from tflw.search.sensitivity import recalibrate_batch_norm

    (x, y), _ = mnist
    keras.utils.set_random_seed(0)
    model = build_demo_model(width=8)
    model.compile(keras.optimizers.Adam(3e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x[:3000], y[:3000], epochs=2, batch_size=64, verbose=0)
    recalibrate_batch_norm(model, x[:512])
    return model


@pytest.fixture(scope="session")
def trained_mnist_qat(mnist):
    """A small conv model trained briefly on the bundled digits, then QAT'd."""
    import tflw

    keras.utils.set_random_seed(0)
    (x_train, y_train), _ = mnist
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Conv2D(8, 3, strides=2, use_bias=False)(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(16, 3, strides=2, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(10)(x)
    model = keras.Model(inputs, outputs, name="mnist_small")
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile("adam", loss, metrics=["accuracy"])
    model.fit(x_train[:3000], y_train[:3000], epochs=3, batch_size=64, verbose=0)
    qat = tflw.quantize_model(model)
    qat.compile(keras.optimizers.Adam(5e-4), loss, metrics=["accuracy"])
    qat.fit(x_train[:3000], y_train[:3000], epochs=1, batch_size=64, verbose=0)
    return model, qat

