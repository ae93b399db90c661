"""Low-bit weights on MNIST: accuracy and flash after LUT compression, W8 down to W1.

    python -m benchmarks.lowbit [--seeds 0 1 2] [--bits 8 4 3 2 1] [--methods lsq apot ...]
    python -m benchmarks.lowbit --dataset cifar10 [--test-samples 2000] ...   # ResNet-8
    python -m benchmarks.lowbit --dataset cifar10 --network resnet20 --bits 2 \
        --methods apot apot+ewgs --activation-bits 2 ...                     # W2/A2
    ... --augment --cosine --float-epochs 200 --qat-epochs 30   # the papers' schedule (GPU)
    ... --float-model /tmp/tflw-lowbit-.../float.keras --distill  # reuse a float model; KD
    KERAS_BACKEND=jax python -m benchmarks.lowbit ... --train-only DIR   # no TensorFlow
    python -m benchmarks.lowbit --from-trained DIR                       # export, TFLM

One float CNN (the demo CNN at width 32, trained once) is fine-tuned with
`quantize_model(weight_bits=k, method=m)` (first and last layer 8-bit) for each k, method
and seed (8 bits is plain int8 and 1 bit binary, whatever the method),
exported (int8 flatbuffer + LUT-compressed one, checked bit-identical in TFLite-Micro) and
run on the 10,000 test digits in TFLite-Micro. `--dataset cifar10` does the same with
the MLPerf Tiny ResNet-8 (or `--network resnet20`) on CIFAR-10 (a random `--test-samples`
subset of the test set in TFLite-Micro). Flash is compared with the float32 flatbuffer of
the same network. Activations are int8 (A8), or with `--activation-bits k` every fused ReLU
on 2^k levels (still int8 on the device). `--train-only DIR` trains and saves (the float
model, each QAT model's weights, their Keras accuracies) without exporting, so it needs
no TensorFlow: a JAX GPU machine runs it. `--from-trained DIR` then exports and measures
those models here, with the settings they were trained with. Targets (issue 5): W4A8 >= float - 1 pp; flash
at W4 <= 0.16x the float32 flatbuffer; W2A2 APoT within 1.6 pp of float on ResNet-20, and
APoT+EWGS no further, with a spread <= 0.5 pp over 3 seeds.
"""

import argparse
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Optional

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import tflw  # noqa: E402
from benchmarks.augmentation import AugmentedImages, cosine_learning_rate  # noqa: E402
from benchmarks.common import (compiled, format_table, machine, on_device,  # noqa: E402
                               write_results)
from benchmarks.shared_data import CIFAR10_FILES, load_cifar10, load_mnist, require  # noqa: E402
from tflw.demo import build_demo_model  # noqa: E402

COLUMNS = (
    ("run", "run", "{}"),
    ("keras_mean", "Keras acc", "{:.2%}"),
    ("gap_to_float", "TFLM - float", "{:+.2%}"),
    ("tflm_mean", "TFLM acc (mean)", "{:.2%}"),
    ("tflm_spread", "spread", "{:.2%}"),
    ("max_lsb", "max LSB", "{:.2f}"),
    ("flash_bytes", "flash B", "{:,}"),
    ("flash_vs_float32", "flash / fp32", "{:.3f}"),
    ("arena_bytes", "arena B", "{:,}"),
)
TRAINED_COLUMN = ("keras_trained_mean", "Keras acc (where trained)", "{:.2%}")
# What --train-only writes beside the models, and --from-trained reads.
TRAINED = "trained.json"


def float32_bytes(model) -> int:
    import tensorflow as tf

    return len(tf.lite.TFLiteConverter.from_keras_model(model).convert())


def trained_qat(float_model, bits: int, method: str, seed: int, train: tuple,
                args) -> keras.Model:
    """`float_model` quantized at `bits` by `method` and fine-tuned (distilled from
    `float_model` with --distill)."""
    keras.utils.set_random_seed(seed)
    qat = quantized(float_model, bits, method, args, calibration_data=train[0][:512])
    student = tflw.Distiller(qat, float_model) if args.distill else qat
    fit(student, train, args.qat_epochs, args.qat_learning_rate, args, seed)
    return qat


def quantized(float_model, bits: int, method: str, args, calibration_data=None):
    return tflw.quantize_model(float_model, calibration_data=calibration_data,
                               weight_bits=bits, method=method,
                               shared_levels=args.shared_levels,
                               activation_bits=args.activation_bits)


def keras_accuracy(model, test: tuple) -> float:
    return float(np.mean(np.argmax(model.predict(test[0], verbose=0), -1) == test[1]))


def measured(qat, test: tuple, workdir: str, name: str) -> dict:
    """Export `qat`, run the test set in TFLite-Micro: accuracies, LSB, flash and arena."""
    device = on_device(qat, *test, workdir, name)
    lut = device.get("lut")
    return {"keras": keras_accuracy(qat, test), "tflm": device["tflm_accuracy"],
            "max_lsb": device["max_lsb_difference"],
            "flash": lut["flatbuffer_bytes"] if lut else device["flatbuffer_bytes"],
            "arena": lut["arena_bytes_measured"] if lut else device["arena_bytes"]}


def run_name(bits: int, method: str, seed: int) -> str:
    return f"w{bits}_{method}_{seed}"


def fit(model, data: tuple, epochs: int, learning_rate: float, args, seed: int) -> None:
    """Compile and train `model`, on augmented batches and a cosine rate when asked."""
    batches = AugmentedImages(*data, args.batch_size, seed) if args.augment else None
    steps = len(batches) if batches else math.ceil(len(data[1]) / args.batch_size)
    compiled(model, cosine_learning_rate(learning_rate, epochs, steps) if args.cosine
             else learning_rate)
    if batches:
        model.fit(batches, epochs=epochs, verbose=2)
    else:
        model.fit(*data, epochs=epochs, batch_size=args.batch_size, verbose=2)


def plan(bits: list, methods: list) -> list:
    """(bits, method) pairs to run: 8 bits once (plain int8), 1 bit once (binary)."""
    return [(k, "lsq") if k == 8 else (k, "binary") if k == 1 else (k, method)
            for k in bits for method in (methods if 1 < k < 8 else [None])]


def float_row(accuracy: float, fp32: Optional[int]) -> dict:
    """The float model's table row (its flatbuffer size unknown after --train-only)."""
    return {"run": "float32", "keras_mean": accuracy, "flash_bytes": fp32,
            "flash_vs_float32": None if fp32 is None else 1.0}


def summary_row(bits: int, method: str, runs: list, float_accuracy: float,
                fp32: Optional[int], activation_bits: int) -> dict:
    """One table row: the mean and spread over seeds of `runs` (dicts from `measured`,
    or with "keras" alone after --train-only)."""
    row = {"run": f"W{bits}A{activation_bits} {method}", "bits": bits, "method": method,
           "keras_mean": float(np.mean([r["keras"] for r in runs]))}
    if "tflm" not in runs[0]:
        return row
    tflm = np.array([r["tflm"] for r in runs])
    return row | {"tflm_mean": float(tflm.mean()), "tflm_spread": float(tflm.max() - tflm.min()),
                  "gap_to_float": float(tflm.mean()) - float_accuracy,
                  "tflm_per_seed": tflm.tolist(), "max_lsb": max(r["max_lsb"] for r in runs),
                  "flash_bytes": runs[0]["flash"], "flash_vs_float32": runs[0]["flash"] / fp32,
                  "arena_bytes": runs[0]["arena"]}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--bits", type=int, nargs="+", default=[8, 4, 3, 2, 1])
    parser.add_argument("--methods", nargs="+", default=["lsq", "ewgs", "apot", "apot+ewgs", "kmeans"])
    parser.add_argument("--results", default="lowbit", help="name of the JSON in results/")
    parser.add_argument("--train-samples", type=int, default=None,
                        help="fine-tune on the first N training digits (default: all 60,000)")
    parser.add_argument("--dataset", choices=["mnist", "cifar10"], default="mnist",
                        help="mnist: the demo CNN; cifar10: ResNet-8 (or --network)")
    parser.add_argument("--network", choices=["resnet8", "resnet20"], default="resnet8",
                        help="the CIFAR-10 network")
    parser.add_argument("--activation-bits", type=int, default=8,
                        help="2 to 7: fused ReLUs on 2^k levels (quantize_model's activation_bits)")
    parser.add_argument("--float-samples", type=int, default=None,
                        help="train the float model on the first N training images (default: all)")
    parser.add_argument("--test-samples", type=int, default=None,
                        help="run a random subset of the test set in TFLite-Micro")
    parser.add_argument("--width", type=int, default=32, help="the demo CNN's width")
    parser.add_argument("--shared-levels", action="store_true",
                        help="one set of levels and one LUT per layer (quantize_model's "
                        "shared_levels)")
    parser.add_argument("--float-epochs", type=int, default=3)
    parser.add_argument("--qat-epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--qat-learning-rate", type=float, default=5e-4)
    parser.add_argument("--augment", action="store_true",
                        help="CIFAR-10: random 4-pixel shifts and flips, new each epoch")
    parser.add_argument("--cosine", action="store_true",
                        help="decay each learning rate to 0 along a half cosine")
    parser.add_argument("--distill", action="store_true",
                        help="fine-tune each QAT model as a student of the float one "
                        "(tflw.Distiller, T = 4, alpha = 0.1)")
    parser.add_argument("--float-model", default=None,
                        help="a trained float .keras of --network to start from, instead "
                        "of training one")
    phase = parser.add_mutually_exclusive_group()
    phase.add_argument("--train-only", metavar="DIR", default=None,
                       help="train and save into DIR (a new folder), export nothing: "
                       "no TensorFlow needed")
    phase.add_argument("--from-trained", metavar="DIR", default=None,
                       help="export and measure the models a --train-only run saved in DIR "
                       "(every other option is taken from that run, but --results)")
    args = parser.parse_args()
    if args.augment and args.dataset != "cifar10":
        parser.error("--augment is CIFAR-10's augmentation (flips would change digits)")
    if args.train_only and os.path.exists(args.train_only):
        parser.error(f"--train-only {args.train_only} exists: name a new folder")
    return args


def datasets(args) -> tuple:
    """(train, test, network builder) for `args.dataset`; test is the --test-samples subset."""
    if args.dataset == "cifar10":
        train, test = load_cifar10(require(*CIFAR10_FILES))
        # the archive is ordered by class: shuffle once, so that a first-N subset has all ten
        order = np.random.default_rng(0).permutation(len(train[1]))
        train = (train[0][order], train[1][order])
        network = getattr(tflw.models, args.network)
    else:
        train, test = load_mnist(require("mnist.npz"))
        network = lambda: build_demo_model(width=args.width)  # noqa: E731
    if args.test_samples:
        pick = np.random.default_rng(0).permutation(len(test[1]))[:args.test_samples]
        test = (test[0][pick], test[1][pick])
    return train, test, network


def main() -> None:
    args = parse_args()
    if args.from_trained:
        measure_trained(Path(args.from_trained), args.results)
        return
    train, test, network = datasets(args)
    qat_train = tuple(part[:args.train_samples] for part in train)
    workdir = args.train_only or tempfile.mkdtemp(prefix="tflw-lowbit-")
    os.makedirs(workdir, exist_ok=True)
    keras.utils.set_random_seed(100)
    if args.float_model:
        model = keras.saving.load_model(args.float_model)
    else:
        model = network()
        fit(model, tuple(part[:args.float_samples] for part in train), args.float_epochs,
            1e-3, args, seed=100)
    float_accuracy = keras_accuracy(model, test)
    model_path = os.path.join(workdir, "float.keras")
    model.save(model_path)
    print(f"float model: {model_path} (--float-model starts another run from it)")
    fp32 = None if args.train_only else float32_bytes(model)

    rows = [float_row(float_accuracy, fp32)]
    trained = {}
    if args.train_only:
        write_manifest(workdir, args, float_accuracy, trained)
    for bits, method in plan(args.bits, args.methods):
        runs = []
        for seed in args.seeds:
            # each run from a fresh copy: --distill's teacher must be untouched by earlier runs
            qat = trained_qat(keras.saving.load_model(model_path), bits, method, seed,
                              qat_train, args)
            name = run_name(bits, method, seed)
            if args.train_only:
                qat.save_weights(os.path.join(workdir, f"{name}.weights.h5"))
                runs.append({"keras": keras_accuracy(qat, test)})
                trained[name] = runs[-1]["keras"]
                # after each run: a run stopped at a time limit keeps what it finished
                write_manifest(workdir, args, float_accuracy, trained)
            else:
                runs.append(measured(qat, test, workdir, name))
        rows.append(summary_row(bits, method, runs, float_accuracy, fp32, args.activation_bits))
    print(format_table(rows, COLUMNS))
    if args.train_only:
        print(f"trained: {workdir} (--from-trained {workdir} exports and measures it)")
        return
    path = write_results(args.results, {"settings": vars(args) | {"cpu_count": os.cpu_count()},
                                    "rows": rows})
    print(f"written: {path}")


def write_manifest(folder: str, args, float_accuracy: float, trained: dict) -> None:
    manifest = {"settings": vars(args), "machine": machine(), "float_keras": float_accuracy,
                "keras": trained}
    Path(folder, TRAINED).write_text(json.dumps(manifest, indent=2) + "\n")


def measure_trained(folder: Path, results: str) -> None:
    """Export and measure in TFLite-Micro the models a --train-only run saved in `folder`
    (those it finished, if it was stopped)."""
    manifest = json.loads((folder / TRAINED).read_text())
    args = argparse.Namespace(**manifest["settings"])
    _, test, _ = datasets(args)
    model = keras.saving.load_model(folder / "float.keras")
    float_accuracy, fp32 = keras_accuracy(model, test), float32_bytes(model)
    workdir = tempfile.mkdtemp(prefix="tflw-lowbit-")
    rows = [float_row(float_accuracy, fp32) | {"keras_trained_mean": manifest["float_keras"]}]
    for bits, method in plan(args.bits, args.methods):
        names = [run_name(bits, method, seed) for seed in args.seeds]
        names = [name for name in names if name in manifest["keras"]]
        if not names:
            continue
        runs = []
        for name in names:
            qat = quantized(model, bits, method, args)
            qat.load_weights(folder / f"{name}.weights.h5")
            runs.append(measured(qat, test, workdir, name))
        row = summary_row(bits, method, runs, float_accuracy, fp32, args.activation_bits)
        rows.append(row | {"seeds": len(names), "keras_trained_mean": float(
            np.mean([manifest["keras"][name] for name in names]))})
    # Keras accuracy where trained (another backend) beside here: the weights travelled whole
    print(format_table(rows, COLUMNS[:2] + (TRAINED_COLUMN,) + COLUMNS[2:]))
    path = write_results(results, {"settings": manifest["settings"] | {"from_trained": str(folder)},
                                   "trained_on": manifest["machine"], "rows": rows})
    print(f"written: {path}")


if __name__ == "__main__":
    main()
