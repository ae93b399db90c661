"""Post-training quantization: the converter's against tflw.ptq's steps, without labels.

    python -m benchmarks.ptq [--models demo resnet8 mobilenet] [--bits 8 4]

For each model: a float model trained here; 1,024 unlabeled calibration images from the
training set; rows, each exported and run on the test set in TFLite-Micro:

- converter: `tflw.export(model, representative_data=...)` (W8A8 only: it has no 4-bit
  path);
- minmax, mse: tflw's quantized layers with min/max or least-squared-error ranges;
- mse+bc: with bias correction; mse+bc+eq: with cross-layer equalization too;
- adaround (+bc, mse): AdaRound per layer; adaround+eq: with equalization;
  adaround+qdrop: with QDrop (half the inputs unquantized while learning); brecq: the
  rounding learned per block; adaround/250, brecq/250, adaround+eq/250: with 250
  iterations per layer or block instead of `--iterations` (1,000).

Columns: TFLite-Micro top-1 on 2,000 test images, flash (the flatbuffer; at 4 bits the
LUT-compressed one plus DECODE's code), the output error against the float model (RMS over
RMS, on logits), and time as ratios: to the converter's conversion in the same process, and
to one QAT epoch on the full training set, timed (an eighth of one, scaled) just before the
row, so that both see the same load. At W8 the converter's, minmax, mse, tflw.ptq's
default (mse+bc) and adaround+eq/250 also run on the whole test set, with the images only
they or only the converter get right and McNemar's exact p of that split. Rows are
appended to results/ptq.json as they finish; a rerun skips rows present unless `--redo`
asks to replace them.
"""

import argparse
import json
import math
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import tflw  # noqa: E402
from benchmarks.common import RESULTS, compiled, format_table, machine  # noqa: E402
from benchmarks.shared_data import (CIFAR10_FILES, load_cifar10, load_mnist,  # noqa: E402
                                    locate)
from tflw.demo import build_demo_model  # noqa: E402
from tflw.export.dense_granularity import output_error  # noqa: E402
from tflw.export.lut import DECODE_CODE_BYTES  # noqa: E402
from tflw.search.sensitivity import recalibrate_batch_norm  # noqa: E402

NAME = "ptq"
CALIBRATION = 1024
TEST_SAMPLES = 2000
NEAREST = dict(rounding="nearest")
STEPS = {
    "minmax": dict(ranges="minmax", bias_correction=False, equalization=False, **NEAREST),
    "mse": dict(ranges="mse", bias_correction=False, equalization=False, **NEAREST),
    "mse+bc": dict(ranges="mse", bias_correction=True, equalization=False, **NEAREST),
    "mse+bc+eq": dict(ranges="mse", bias_correction=True, equalization=True, **NEAREST),
    "adaround": dict(ranges="mse", bias_correction=True, rounding="adaround",
                     equalization=False),
    "adaround+eq": dict(ranges="mse", bias_correction=True, rounding="adaround",
                        equalization=True),
    "adaround+qdrop": dict(ranges="mse", bias_correction=True, rounding="adaround", qdrop=0.5,
                           equalization=False),
    "brecq": dict(ranges="mse", bias_correction=True, rounding="brecq", equalization=False),
    # 250 iterations, tflw's default (the steps above take --iterations, 1,000)
    "adaround/250": dict(ranges="mse", bias_correction=True, rounding="adaround",
                         iterations=250, equalization=False),
    "brecq/250": dict(ranges="mse", bias_correction=True, rounding="brecq", iterations=250,
                      equalization=False),
    "adaround+eq/250": dict(ranges="mse", bias_correction=True, rounding="adaround",
                            equalization=True, iterations=250),
}
# At W8 the converter, tflw's min/max and MSE ranges and tflw.ptq's defaults (mse+bc at 8
# bits; adaround+eq/250 is the default below) also run on every test image, paired image by
# image with the converter's: 2,000 images cannot tell apart rows a few tenths apart.
FULL_TEST_STEPS = ("converter", "minmax", "mse", "mse+bc", "adaround+eq/250")
QAT_SLICE = 8  # the QAT epoch beside each row: an eighth of one, timed and scaled


def demo_task():
    (x, y), (x_test, y_test) = load_mnist(locate("mnist.npz"))
    return dict(model=build_demo_model, data=(x, y), test=(x_test, y_test), epochs=3, lr=3e-3)


def resnet8_task():
    (x, y), (x_test, y_test) = load_cifar10(locate(*CIFAR10_FILES))
    return dict(model=tflw.models.resnet8, data=(x, y), test=(x_test, y_test), epochs=4,
                lr=3e-3)


def mobilenet_task():
    (x, y), (x_test, y_test) = load_cifar10(locate(*CIFAR10_FILES))
    # 15 epochs: at 4 this model reached 34.85 %, too weak a float model to judge PTQ by
    return dict(model=lambda: tflw.models.mobilenet_v1(0.25, (32, 32, 3), classes=10),
                data=(x, y), test=(x_test, y_test), epochs=15, lr=3e-3)


TASKS = {"demo": demo_task, "resnet8": resnet8_task, "mobilenet": mobilenet_task}


def tflm_outputs(path, x: np.ndarray) -> np.ndarray:
    """TFLite-Micro's outputs on `x`, in two halves run side by side (one per core)."""
    with ThreadPoolExecutor(2) as pool:
        halves = pool.map(lambda part: tflw.verify(path, part).outputs[0],
                          np.array_split(x, 2))
        return np.concatenate(list(halves))


def qat_epoch_now(qat, x: np.ndarray, y: np.ndarray) -> float:
    """One QAT epoch's seconds, estimated from an eighth of one timed now (the model already
    traced), so that a row's ratio sees the load the row saw."""
    part = len(x) // QAT_SLICE
    start = time.perf_counter()
    qat.fit(x[:part], y[:part], epochs=1, batch_size=64, verbose=0)
    return (time.perf_counter() - start) * QAT_SLICE


def mcnemar_p(wins: int, losses: int) -> float:
    """Exact two-sided McNemar p-value of `wins` against `losses` (the images only one of
    two models gets right): how likely a split this uneven is if neither is better."""
    count = wins + losses
    tail = sum(math.comb(count, k) for k in range(min(wins, losses) + 1)) / 2.0 ** count
    return min(1.0, 2.0 * tail)


def full_test_columns(predicted: np.ndarray, labels: np.ndarray, float_predicted: np.ndarray,
                      converter_right: np.ndarray) -> dict:
    """On every test image: top-1; agreement with the float model's top-1 (what PTQ can
    promise: a quantized model may also land above its float model, by luck); and, against
    the converter's on the same images, the images only this row gets right (wins), only
    the converter's (losses), and McNemar's p."""
    right = predicted == labels
    wins = int(np.sum(right & ~converter_right))
    losses = int(np.sum(converter_right & ~right))
    return {"full_test_images": len(right), "full_tflm_accuracy": float(np.mean(right)),
            "full_float_agreement": float(np.mean(predicted == float_predicted)),
            "full_wins": wins, "full_losses": losses, "full_mcnemar_p": mcnemar_p(wins, losses)}


def measure(result, x_test, y_test, reference) -> dict:
    outputs = tflm_outputs(result.tflite_path, x_test)
    flash = result.flatbuffer_bytes
    lut = result.report.get("lut")
    if lut and lut["flatbuffer_bytes"] + DECODE_CODE_BYTES < flash:
        flash = lut["flatbuffer_bytes"] + DECODE_CODE_BYTES
    return {"tflm_accuracy": float(np.mean(outputs.argmax(-1) == np.ravel(y_test))),
            "flash_bytes": flash, "arena_bytes": result.arena_bytes,
            "output_error": output_error(outputs, reference),
            "max_lsb_difference": (result.verification.max_lsb_difference
                                   if result.verification else None)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--bits", nargs="+", type=int, default=[8, 4])
    parser.add_argument("--steps", nargs="+", default=["converter", *STEPS],
                        choices=["converter", *STEPS])
    parser.add_argument("--iterations", type=int, default=1000, help="AdaRound's, per layer")
    parser.add_argument("--workdir", default="build/ptq")
    parser.add_argument("--redo", action="store_true",
                        help="replace the rows of these models, bits and steps (after a change)")
    args = parser.parse_args(argv)
    path = RESULTS / f"{NAME}.json"
    saved = json.loads(path.read_text()) if path.is_file() else {}
    rows, models = saved.get("rows", []), saved.get("models", {})
    if args.redo:
        rows = [r for r in rows if not (r["model"] in args.models and r["bits"] in args.bits
                                        and r["step"] in args.steps)]
    done = {(r["model"], r["bits"], r["step"]) for r in rows}
    command = "python -m benchmarks.ptq " + " ".join(sys.argv[1:] if argv is None else argv)

    def write():
        order = ["converter", *STEPS]
        rows.sort(key=lambda r: (list(TASKS).index(r["model"]), -r["bits"],
                                 order.index(r["step"])))
        path.write_text(json.dumps({"machine": machine(), "command": command,
                                    "date": time.strftime("%Y-%m-%d"), "models": models,
                                    "rows": rows}, indent=2) + "\n")

    for name in args.models:
        task = TASKS[name]()
        keras.utils.set_random_seed(0)
        x, y = task["data"]
        saved_model = f"{args.workdir}/{name}/float.keras"  # a rerun adds rows to the same model
        if os.path.isfile(saved_model):
            model = keras.saving.load_model(saved_model)
        else:
            model = compiled(task["model"](), task["lr"])
            model.fit(x, y, epochs=task["epochs"], batch_size=64, verbose=0)
            recalibrate_batch_norm(model, x[:1024])
            os.makedirs(os.path.dirname(saved_model), exist_ok=True)
            model.save(saved_model)
        pick = np.random.default_rng(0).permutation(len(task["test"][0]))[:TEST_SAMPLES]
        x_test, y_test = task["test"][0][pick], task["test"][1][pick]
        calibration = x[np.random.default_rng(1).permutation(len(x))[:CALIBRATION]]
        reference = model.predict(x_test, verbose=0)
        qat = compiled(tflw.quantize_model(model, calibration_data=calibration[:512]), 5e-4)
        start = time.perf_counter()
        qat.fit(x, y, epochs=1, batch_size=64, verbose=0)
        qat_epoch = time.perf_counter() - start
        start = time.perf_counter()
        converter = tflw.export(model, f"{args.workdir}/{name}/converter", overwrite=True,
                                representative_data=calibration[:300], sample_inputs=x_test[:200])
        converter_seconds = time.perf_counter() - start
        x_full, y_full = task["test"][0], np.ravel(task["test"][1])
        float_predicted = model.predict(x_full, verbose=0).argmax(-1)
        models[name] = {"float_accuracy": float(np.mean(reference.argmax(-1) == y_test)),
                        "full_float_accuracy": float(np.mean(float_predicted == y_full)),
                        "qat_epoch_seconds": qat_epoch, "converter_seconds": converter_seconds,
                        "date": time.strftime("%Y-%m-%d"), "command": command}
        print(name, models[name], flush=True)
        converter_right = None
        if 8 in args.bits and any(step in FULL_TEST_STEPS for step in args.steps):
            converter_right = tflm_outputs(converter.tflite_path, x_full).argmax(-1) == y_full
        for bits in args.bits:
            for step in args.steps:
                if (name, bits, step) in done or (step == "converter" and bits != 8):
                    continue
                qat_epoch = qat_epoch_now(qat, x, y)
                start = time.perf_counter()
                if step == "converter":
                    result, seconds = converter, converter_seconds
                else:
                    quantized = tflw.ptq(model, calibration, weight_bits=bits,
                                         **{"iterations": args.iterations, **STEPS[step]})
                    seconds = time.perf_counter() - start
                    result = tflw.export(quantized, f"{args.workdir}/{name}/{step}-{bits}",
                                         overwrite=True, sample_inputs=x_test[:200],
                                         compress="always" if bits < 8 else "never")
                row = {"model": name, "bits": bits, "step": step,
                       "date": time.strftime("%Y-%m-%d"), "seconds": seconds,
                       "qat_epoch_seconds": qat_epoch,
                       "vs_converter": seconds / converter_seconds,
                       "vs_qat_epoch": seconds / qat_epoch,
                       **measure(result, x_test, y_test, reference)}
                if bits == 8 and step in FULL_TEST_STEPS and converter_right is not None:
                    predicted = tflm_outputs(result.tflite_path, x_full).argmax(-1)
                    row.update(full_test_columns(predicted, y_full, float_predicted,
                                                 converter_right))
                    row["full_gap_to_float_pp"] = 100 * (models[name]["full_float_accuracy"]
                                                         - row["full_tflm_accuracy"])
                row["gap_to_float_pp"] = 100 * (models[name]["float_accuracy"]
                                                - row["tflm_accuracy"])
                rows.append(row)
                write()
                print(format_table([row], COLUMNS), flush=True)
    write()
    print(format_table(rows, COLUMNS))


COLUMNS = (("model", "model", "{}"), ("bits", "W", "{}"), ("step", "step", "{}"),
           ("tflm_accuracy", "TFLM top-1", "{:.2%}"), ("gap_to_float_pp", "gap pp", "{:.2f}"),
           ("output_error", "output error", "{:.4f}"), ("flash_bytes", "flash B", "{:,}"),
           ("vs_converter", "time / converter", "{:.1f}"),
           ("vs_qat_epoch", "time / QAT epoch", "{:.2f}"),
           ("full_tflm_accuracy", "all-test top-1", "{:.2%}"),
           ("full_float_agreement", "same top-1 as float", "{:.2%}"),
           ("full_wins", "wins vs conv.", "{}"), ("full_losses", "losses", "{}"),
           ("full_mcnemar_p", "McNemar p", "{:.2f}"))

if __name__ == "__main__":
    main()
