"""The model zoo on the device: size, arena, speed and, where data is at hand, accuracy.

    python -m benchmarks.zoo [--cifar-epochs 4] [--gesture-epochs 12] [--models NAME ...]

For each `tflw.models` model: parameters, MACs, flash, measured arena, host TFLite-Micro
invoke time, which boards it fits and the estimated latency on the Nano 33 BLE Sense;
for the trained ones also training time (float + QAT), peak process memory, NetScore and
information density.
ResNet-8 trains on CIFAR-10 and the gesture CNN on AllGestureWiimote (jitter, scale and
shift augmentation: 300 training series), each then gets int8 QAT and runs its whole
test set (CIFAR-10: 2,000 random test images) in TFLite-Micro. DS-CNN and MobileNetV1-0.25 have no dataset here (speech
commands, visual wake words): their rows are size and speed only, from random weights.
ShiftResNet-20 and MobileNetV3-small (0.5, at 32x32) train on CIFAR-10 as ResNet-8 does
(with --cifar-epochs 0, CIFAR-10 models give size and speed rows from random weights).
`--models` reruns only the named models and replaces their rows in results/zoo.json, each
row keeping the command and date that made it.
"""

import argparse
import json
import os
import sys
import resource
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import tflw  # noqa: E402
from benchmarks.common import RESULTS, compiled, format_table, on_device, write_results  # noqa: E402,E501
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


# CIFAR-10 models: the name of their row and how to build them for 32x32x3, 10 classes
CIFAR_MODELS = {
    "resnet8": ("resnet8 (CIFAR-10)", tflw.models.resnet8),
    "shift_resnet20": ("shift_resnet20 (CIFAR-10)", tflw.models.shift_resnet20),
    "mobilenet_v3_small": ("mobilenet_v3_small (0.5, CIFAR-10)",
                           lambda: tflw.models.mobilenet_v3_small(0.5, (32, 32, 3), classes=10)),
}
UNTRAINED = ("ds_cnn", "mobilenet_v1_0.25")
MODELS = (*UNTRAINED, "gesture_cnn", *CIFAR_MODELS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
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
        if name not in args.models:
            continue
        model = build()
        data = rng.normal(size=(64, *tuple(model.inputs[0].shape)[1:])).astype(np.float32)
        rows.append(row(name, tflw.quantize_model(model, calibration_data=data), None, workdir))

    keras.utils.set_random_seed(0)
    gestures = locate("gestures-wiimote.npz")
    if gestures is not None and "gesture_cnn" in args.models:
        (x, y), test = load_gestures(gestures)
        train = (augment(x, 20, rng), np.repeat(y, 20))
        qat, accuracy, seconds = trained(tflw.models.gesture_cnn(filters=32, dropout=0.3),
                                         train, test, args.gesture_epochs, args.qat_epochs, 64)
        rows.append(row("gesture_cnn (gestures)", qat, test, workdir, accuracy, seconds))

    cifar = locate(*CIFAR10_FILES)
    cifar_models = [name for name in CIFAR_MODELS if name in args.models]
    if cifar_models and (cifar is None or not args.cifar_epochs):  # size, speed: random weights
        for name in cifar_models:
            model = CIFAR_MODELS[name][1]()
            data = rng.normal(size=(64, 32, 32, 3)).astype(np.float32)
            rows.append(row(f"{name} (untrained)", tflw.quantize_model(
                model, calibration_data=data), None, workdir))
    elif cifar_models:
        train, test = load_cifar10(cifar)
        # a random subset: the archive lists the test images class by class
        pick = np.random.default_rng(0).permutation(len(test[1]))[:args.cifar_test_samples]
        test = (test[0][pick], test[1][pick])
        for name in cifar_models:
            keras.utils.set_random_seed(0)
            title, build = CIFAR_MODELS[name]
            qat, accuracy, seconds = trained(build(), train, test, args.cifar_epochs,
                                             args.qat_epochs, 64)
            rows.append(row(title, qat, test, workdir, accuracy, seconds))
            print(format_table(rows[-1:], COLUMNS), flush=True)
            save(rows, args)

    print(format_table(rows, COLUMNS))
    print(f"written: {save(rows, args)}")


def save(rows: list[dict], args: argparse.Namespace) -> Path:
    """Write the rows so far; a partial run keeps the other models' rows.

    A model's new row replaces its old ones, the untrained size-and-speed row included.
    """
    command = "python -m benchmarks.zoo " + " ".join(sys.argv[1:])
    for new in rows:
        new.setdefault("command", command)
        new.setdefault("date", time.strftime("%Y-%m-%d"))
    settings = vars(args) | {"cpu_count": os.cpu_count()}
    if set(args.models) != set(MODELS) and (RESULTS / "zoo.json").is_file():
        # the other rows keep their run's settings; these rows name their own command
        previous = json.loads((RESULTS / "zoo.json").read_text())
        replaced = {base_name(new["model"]) for new in rows}
        rows = [old for old in previous["rows"] if base_name(old["model"]) not in replaced] + rows
        settings = previous["settings"]
    return write_results("zoo", {"settings": settings, "rows": rows})


def base_name(row_name: str) -> str:
    """'resnet8 (CIFAR-10)' -> 'resnet8'."""
    return row_name.split(" (")[0]

if __name__ == "__main__":
    main()
