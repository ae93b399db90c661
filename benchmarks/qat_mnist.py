"""QAT on full MNIST: float vs TFLite PTQ vs tfmot QAT vs tflw QAT, measured in TFLite-Micro.

    python -m benchmarks.qat_mnist [--float-epochs 3] [--qat-epochs 1]

One process, one float model (the demo CNN: conv+BN+ReLU, depthwise+BN+ReLU6, 1x1 conv+BN,
residual add, conv, global pooling, dense). PTQ, tfmot and tflw all start from its weights;
tfmot gets the same network rebuilt in tf_keras. Every int8 model is converted, run on the
10,000 test digits in the TFLite-Micro interpreter, and compared with its Keras twin.
Step times are medians over an epoch, as a ratio to the float step of the same Keras.
Targets (issue 2): tflw int8 >= float - 0.3 pp, >= PTQ, >= tfmot - 0.1 pp; parity >= 99.9 %
and <= 1 LSB; QAT step <= 1.25x float.
"""

import argparse
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

import tflw  # noqa: E402
from benchmarks.common import compiled, fit_timed, format_table, on_device, write_results  # noqa: E402
from benchmarks.shared_data import load_mnist, require  # noqa: E402
from tflw.demo import build_demo_model  # noqa: E402

COLUMNS = (
    ("run", "run", "{}"),
    ("keras_accuracy", "Keras acc", "{:.2%}"),
    ("tflm_accuracy", "TFLM int8 acc", "{:.2%}"),
    ("argmax_agreement", "argmax agree", "{:.2%}"),
    ("max_lsb_difference", "max LSB", "{:.2f}"),
    ("outputs_over_1_lsb", "outputs >1 LSB", "{:.3%}"),
    ("step_time_ratio", "step / float", "{:.2f}x"),
    ("flatbuffer_bytes", "flash B", "{:,}"),
    ("arena_bytes", "arena B", "{:,}"),
)


def tfmot_run(float_model, train, x_test, y_test, args, workdir: str) -> dict:
    """The same network in tf_keras, from the same float weights, through tfmot QAT."""
    import tf_keras

    def twin():
        model = build_demo_model(tf_keras)
        model.set_weights(float_model.get_weights())
        return model

    timing_steps = 200 * args.batch_size  # enough steps for a stable median
    float_step = fit_timed(
        compiled(twin(), 1e-4, tf_keras), (train[0][:timing_steps], train[1][:timing_steps]),
        1, args.batch_size, tf_keras,
    )
    qat = compiled(tflw.quantize_model(twin()), args.qat_learning_rate, tf_keras)
    qat_step = fit_timed(qat, train, args.qat_epochs, args.batch_size, tf_keras)
    return {
        "run": "tfmot QAT (tf_keras)",
        "keras_accuracy": float(qat.evaluate(x_test, y_test, verbose=0)[1]),
        "step_time_ratio": qat_step / float_step,
        **on_device(qat, x_test, y_test, workdir, "tfmot"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--float-epochs", type=int, default=3)
    parser.add_argument("--qat-epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--qat-learning-rate", type=float, default=5e-4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    keras.utils.set_random_seed(args.seed)
    train, (x_test, y_test) = load_mnist(require("mnist.npz"))
    workdir = tempfile.mkdtemp(prefix="tflw-bench-")
    rows = []

    float_model = compiled(build_demo_model(), 3e-3)
    float_step = fit_timed(float_model, train, args.float_epochs, args.batch_size)
    float_accuracy = float(float_model.evaluate(x_test, y_test, verbose=0)[1])
    rows.append({"run": "float (Keras 3)", "keras_accuracy": float_accuracy, "step_time_ratio": 1.0})

    ptq = on_device(float_model, x_test, y_test, workdir, "ptq", representative=train[0][:300])
    rows.append({"run": "TFLite PTQ int8", "keras_accuracy": float_accuracy, **ptq})

    rows.append(tfmot_run(float_model, train, x_test, y_test, args, workdir))

    qat = compiled(tflw.quantize_model(float_model), args.qat_learning_rate)
    qat_step = fit_timed(qat, train, args.qat_epochs, args.batch_size)
    rows.append({
        "run": "tflw QAT (Keras 3)",
        "keras_accuracy": float(qat.evaluate(x_test, y_test, verbose=0)[1]),
        "step_time_ratio": qat_step / float_step,
        **on_device(qat, x_test, y_test, workdir, "tflw"),
    })

    print(format_table(rows, COLUMNS))
    path = write_results("qat_mnist", {
        "settings": vars(args) | {"cpu_count": os.cpu_count(), "test_samples": len(x_test)},
        "runs": rows,
    })
    print(f"\nwritten: {path}")


if __name__ == "__main__":
    main()
