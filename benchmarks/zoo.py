"""The model zoo on the device: size, arena, speed and, where data is at hand, accuracy.

    python -m benchmarks.zoo [--cifar-epochs 4] [--gesture-epochs 12]

For each `tflw.models` model: parameters, MACs, flash, measured arena, host TFLite-Micro
invoke time, which boards it fits and the estimated latency on the Nano 33 BLE Sense;
for the trained ones also training time (float + QAT), peak process memory, NetScore and
information density.
ResNet-8 trains on CIFAR-10 and the gesture CNN on AllGestureWiimote (jitter, scale and
shift augmentation: 300 training series), each then gets int8 QAT and runs its whole
test set (CIFAR-10: 2,000 random test images) in TFLite-Micro. DS-CNN and MobileNetV1-0.25 have no dataset here (speech
commands, visual wake words): their rows are size and speed only, from random weights.
"""

import argparse
import os
import resource
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import tflw  # noqa: E402
from benchmarks.common import compiled, format_table, on_device, write_results  # noqa: E402
from benchmarks.shared_data import CIFAR10_FILES, load_cifar10, load_gestures, locate  # noqa: E402
from tflw.errors import ModelTooLargeError  # noqa: E402

COLUMNS = (
    ("model", "model", "{}"),
    ("parameters", "params", "{:,}"),
    ("macs", "MACs", "{:,}"),
    ("flatbuffer_bytes", "flash B", "{:,}"),
    ("arena_bytes", "arena B", "{:,}"),
    ("invoke_us", "host invoke us", "{:.0f}"),
    ("nano33ble_ms", "Nano 33 est. ms", "{:.1f}"),
    ("train_seconds", "train s", "{:.0f}"),
    ("peak_rss_mb", "peak RSS MB", "{:.0f}"),
    ("fits", "fits", "{}"),
    ("float_accuracy", "float acc", "{:.2%}"),
    ("tflm_accuracy", "TFLM int8 acc", "{:.2%}"),
    ("max_lsb_difference", "max LSB", "{:.2f}"),
    ("netscore_tflm", "NetScore", "{:.1f}"),
)


def augment(x: np.ndarray, copies: int, rng: np.random.Generator) -> np.ndarray:
    """Accelerometer windows with random per-axis gain, circular time shift and jitter."""
    xs = np.repeat(x, copies, axis=0)
    gain = rng.uniform(0.8, 1.2, (len(xs), 1, xs.shape[2]))
    shifted = np.stack([np.roll(w, s, axis=0) for w, s in zip(xs, rng.integers(-8, 9, len(xs)))])
    return (shifted * gain + rng.normal(0, 0.05, xs.shape)).astype(np.float32)


def fitting_boards(analysis) -> str:
    fits = []
    for key in tflw.boards.BOARDS:
        try:
            analysis.check_fits(key)
            fits.append(key)
        except ModelTooLargeError:
            pass
    return " ".join(fits) or "none"


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def trained(model, train, test, epochs: int, qat_epochs: int, batch_size: int):
    """Float training, then int8 QAT; returns (qat model, float test accuracy, seconds)."""
    start = time.perf_counter()
    compiled(model, 2e-3).fit(*train, epochs=epochs, batch_size=batch_size, verbose=2)
    float_accuracy = float(model.evaluate(*test, verbose=0)[1])
    qat = compiled(tflw.quantize_model(model, calibration_data=train[0][:512]), 2e-4)
    qat.fit(*train, epochs=qat_epochs, batch_size=batch_size, verbose=2)
    return qat, float_accuracy, time.perf_counter() - start


def row(name: str, qat, test, workdir: str, float_accuracy=None, train_seconds=None) -> dict:
    analysis = tflw.analyze(qat, board="nano33ble")
    result = {"model": name, "parameters": analysis.parameters, "macs": analysis.macs,
              "flatbuffer_bytes": analysis.flatbuffer_bytes, "arena_bytes": analysis.arena_bytes,
              "invoke_us": analysis.host_invoke_seconds * 1e6,
              "nano33ble_ms": analysis.latency_estimate_seconds * 1e3,
              "fits": fitting_boards(analysis), "float_accuracy": float_accuracy,
              "train_seconds": train_seconds,
              # cumulative over the run: each trained model's row is measured after it
              "peak_rss_mb": peak_rss_mb() if train_seconds is not None else None}
    if test is not None:
        device = on_device(qat, *test, workdir, name)
        result |= {key: device[key] for key in ("tflm_accuracy", "max_lsb_difference")}
        if float_accuracy is not None:
            result["netscore_tflm"] = analysis.netscore(device["tflm_accuracy"])
            result["information_density"] = analysis.information_density(device["tflm_accuracy"])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cifar-epochs", type=int, default=4)
    parser.add_argument("--gesture-epochs", type=int, default=12)
    parser.add_argument("--qat-epochs", type=int, default=1)
    parser.add_argument("--cifar-test-samples", type=int, default=2000,
                        help="test images run in TFLite-Micro (reference kernels are slow)")
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="tflw-zoo-")
    rng = np.random.default_rng(0)
    rows = []
    for name, build in (("ds_cnn", tflw.models.ds_cnn),
                        ("mobilenet_v1_0.25", lambda: tflw.models.mobilenet_v1(0.25))):
        model = build()
        data = rng.normal(size=(64, *tuple(model.inputs[0].shape)[1:])).astype(np.float32)
        rows.append(row(name, tflw.quantize_model(model, calibration_data=data), None, workdir))

    keras.utils.set_random_seed(0)
    gestures = locate("gestures-wiimote.npz")
    if gestures is not None:
        (x, y), test = load_gestures(gestures)
        train = (augment(x, 20, rng), np.repeat(y, 20))
        qat, accuracy, seconds = trained(tflw.models.gesture_cnn(filters=32, dropout=0.3),
                                         train, test, args.gesture_epochs, args.qat_epochs, 64)
        rows.append(row("gesture_cnn (gestures)", qat, test, workdir, accuracy, seconds))

    cifar = locate(*CIFAR10_FILES)
    if cifar is not None and args.cifar_epochs:
        train, test = load_cifar10(cifar)
        # a random subset: the archive lists the test images class by class
        pick = np.random.default_rng(0).permutation(len(test[1]))[:args.cifar_test_samples]
        test = (test[0][pick], test[1][pick])
        qat, accuracy, seconds = trained(tflw.models.resnet8(), train, test, args.cifar_epochs,
                                         args.qat_epochs, 64)
        rows.append(row("resnet8 (CIFAR-10)", qat, test, workdir, accuracy, seconds))

    print(format_table(rows, COLUMNS))
    path = write_results("zoo", {"settings": vars(args) | {"cpu_count": os.cpu_count()},
                                 "rows": rows})
    print(f"written: {path}")


if __name__ == "__main__":
    main()
