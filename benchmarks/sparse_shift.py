"""Sparse Shift's learned moves against ShiftNet's fixed ones, on CIFAR-10 in TFLite-Micro.

    python -m benchmarks.sparse_shift [--epochs 2] [--l1 1e-5 1e-4 1e-3]

A ShiftResNet-8 (a 16-filter 3x3 stem, one `shift_residual_block` per stage of 16, 32 and 64
filters with expansion 3, global pooling, a dense layer) trains in float on CIFAR-10 with
fixed shifts and with `SparseShift` at each L1 weight, same seed, same epochs; each is then
quantized (ranges calibrated on 512 training images, no QAT) and runs 2,000 random test
images in TFLite-Micro. Per row: float and TFLite-Micro top-1, the fraction of channels the
shifts move, the STRIDED_SLICE ops they became, flash, arena, host invoke time (and each as
a ratio to the fixed shifts' row). Rows are written after each model.
"""

import argparse
import os
import sys
import tempfile
import time
from itertools import groupby

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import tflw  # noqa: E402
from benchmarks.common import compiled, format_table, on_device, write_results  # noqa: E402
from benchmarks.shared_data import CIFAR10_FILES, load_cifar10, locate  # noqa: E402
from tflw.models import Shift, SparseShift, conv_bn_relu, shift_residual_block  # noqa: E402

COLUMNS = (("shift", "shift", "{}"), ("float_accuracy", "float top-1", "{:.2%}"),
           ("tflm_accuracy", "TFLM top-1", "{:.2%}"), ("moved", "channels moved", "{:.1%}"),
           ("slices", "slices", "{}"), ("flatbuffer_bytes", "flash B", "{:,}"),
           ("arena_bytes", "arena B", "{:,}"), ("invoke_us", "invoke us", "{:.0f}"),
           ("train_seconds", "train s", "{:.0f}"))
RATIOS = ("flatbuffer_bytes", "arena_bytes", "invoke_us")


def shift_resnet8(sparse) -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3))
    x = conv_bn_relu(inputs, 16, 3, name="stem")
    for stage, filters in enumerate((16, 32, 64)):
        x = shift_residual_block(x, filters, 2 if stage else 1, 3, sparse, name=f"stack{stage + 1}")
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(10)(x))


def moved_fraction(model: keras.Model) -> float:
    """Channels moved at all, over every shift layer's channels."""
    moves = np.concatenate([layer.moves() if isinstance(layer, SparseShift)
                            else np.array(layer.channel_moves(layer.input.shape[-1]))
                            for layer in model.layers if isinstance(layer, (Shift, SparseShift))])
    return float(np.mean(np.any(moves != 0, axis=1)))


def slices(qat: keras.Model) -> int:
    """The STRIDED_SLICE ops the quantized model's shifts make: one per run of equal moves."""
    return sum(len(list(groupby(layer.channel_moves(layer.input.shape[-1]))))
               for layer in qat.layers if isinstance(layer, Shift))


def measure(label: str, sparse, train, test, epochs: int, workdir: str) -> dict:
    model = shift_resnet8(sparse)
    start = time.perf_counter()
    compiled(model, 2e-3).fit(*train, epochs=epochs, batch_size=64, verbose=2)
    seconds = time.perf_counter() - start
    float_accuracy = float(model.evaluate(*test, verbose=0)[1])
    qat = tflw.quantize_model(model, calibration_data=train[0][:512])
    device = on_device(qat, *test, workdir, label.replace(" ", "_"))
    return {"shift": label, "l1": sparse or None,
            "float_accuracy": float_accuracy, "moved": moved_fraction(model),
            "slices": slices(qat), "train_seconds": seconds,
            **{key: device[key] for key in ("tflm_accuracy", "max_lsb_difference",
                                            "flatbuffer_bytes", "arena_bytes", "invoke_us")}}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--l1", type=float, nargs="+", default=[1e-5, 1e-4, 1e-3],
                        help="L1 weights on the shifts (each > 0)")
    parser.add_argument("--test-samples", type=int, default=2000)
    args = parser.parse_args(argv)
    if min(args.l1) <= 0:
        parser.error("--l1 takes weights above 0 (0 would build the fixed shifts)")
    cifar = locate(*CIFAR10_FILES)
    if cifar is None:
        sys.exit("CIFAR-10 is not in ../shared/data (or TFLW_SHARED_DATA): nothing to measure")
    train, test = load_cifar10(cifar)
    pick = np.random.default_rng(0).permutation(len(test[1]))[:args.test_samples]
    test = (test[0][pick], test[1][pick])
    given = sys.argv[1:] if argv is None else argv
    command = "python -m benchmarks.sparse_shift " + " ".join(given)
    runs = [("fixed (ShiftNet)", False)] + [(f"sparse, L1 {l1:g}", l1) for l1 in args.l1]
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for label, sparse in runs:
            rows.append(measure(label, sparse, train, test, args.epochs, workdir))
            for key in RATIOS:
                rows[-1][f"{key}_vs_fixed"] = rows[-1][key] / rows[0][key]
            print(format_table(rows[-1:], COLUMNS), flush=True)
            write_results("sparse_shift", {"command": command, "date": time.strftime("%Y-%m-%d"),
                                           "settings": vars(args), "rows": rows})
    print(format_table(rows, COLUMNS))


if __name__ == "__main__":
    main()
