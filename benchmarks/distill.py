"""Distillation on MNIST: does a float teacher raise a small int8 student's accuracy?

    python -m benchmarks.distill [--seeds 0 1 2] [--train-samples 3000]

Teacher: a conventional float CNN (two 3x3 convs, a 128-unit dense layer; ~99 % on
MNIST, 1.2 M parameters), trained on all 60,000 digits. Student: the demo CNN at width 16
(5.6 k parameters). For each seed: the student trained on labels (A) or with the
teacher's soft targets (B, cached teacher logits); then int8 QAT of A on labels (C) and
of B with distillation (D). C and D run on the 10,000 test digits in TFLite-Micro.
`--train-samples` gives the student only the first N labelled digits (the teacher keeps
all): the small-dataset case of many embedded projects. `--student mlp` distils into two
dense hidden layers of `--student-width` units instead (Hinton et al.'s MNIST student,
which can overfit the labels). Target (issue 4): D - C larger than the spread over seeds.
`--relational` adds E and F: as D, with attention transfer (E) or similarity-preserving
distillation (F) on the student's last feature map at each spatial size that the teacher
also has, in float training and QAT; it builds the teacher with 'same' padding (maps at
14x14 and 7x7, the student's sizes: attention transfer compares maps of one size).
Results go to results/distill_<samples or full>[_mlp<width>_e<epochs>][_relational].json.
"""

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import tflw  # noqa: E402
from benchmarks.common import compiled, format_table, on_device, write_results  # noqa: E402
from benchmarks.shared_data import load_mnist, require  # noqa: E402
from tflw.demo import build_demo_model  # noqa: E402
from tflw.distillation import teacher_logits  # noqa: E402

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
COLUMNS = (
    ("run", "run", "{}"),
    ("mean", "mean acc", "{:.2%}"),
    ("spread", "spread (max-min)", "{:.2%}"),
    ("per_seed", "per seed", "{}"),
)


def build_teacher(padding: str = "valid") -> keras.Model:
    """Far stronger than the student, as distillation needs: the demo CNN at width 64
    saturates near 98 % (global pooling), and from it soft targets did not help.
    With 'same' padding its maps are 28, 14 and 7 pixels wide (a pooling after each conv)."""
    layers = keras.layers
    inputs = keras.Input((28, 28, 1))
    x = layers.Conv2D(32, 3, activation="relu", padding=padding)(inputs)
    if padding == "same":
        x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(64, 3, activation="relu", padding=padding)(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Dropout(0.25)(layers.Flatten()(x))
    x = layers.Dropout(0.5)(layers.Dense(128, activation="relu")(x))
    return keras.Model(inputs, layers.Dense(10)(x), name="teacher_cnn")


def build_mlp_student(hidden: int) -> keras.Model:
    """Two dense hidden layers without regularization: the student Hinton et al. (2015)
    distilled on MNIST. It has the capacity to overfit the labels, which soft targets
    regularize; the small CNN student instead underfits."""
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Flatten()(inputs)
    for _ in range(2):
        x = keras.layers.Dense(hidden, activation="relu")(x)
    return keras.Model(inputs, keras.layers.Dense(10)(x), name="mlp_student")


def build_student(args) -> keras.Model:
    if args.student == "mlp":
        return build_mlp_student(args.student_width)
    return build_demo_model(width=args.student_width)


def feature_pairs(student: keras.Model, teacher: keras.Model) -> dict:
    """{student layer: teacher layer}: the last layer of each spatial size both models have,
    the input's size aside (a quantized student's input quantizer is no learned feature)."""
    def last_of_each_size(model):
        sizes = {tuple(layer.output.shape[1:3]): layer.name for layer in model.layers
                 if len(layer.output.shape) == 4}
        sizes.pop(tuple(model.inputs[0].shape[1:3]), None)
        return sizes
    teacher_maps = last_of_each_size(teacher)
    return {name: teacher_maps[size] for size, name in last_of_each_size(student).items()
            if size in teacher_maps}


def distilled(student, teacher, learning_rate: float, args, relation: str = "") -> tflw.Distiller:
    """Logits distillation, plus attention transfer or similarity preserving ("attention",
    "similarity") on `feature_pairs`; without them the teacher's logits are cached."""
    extra = {relation: feature_pairs(student, teacher)} if relation else {}
    distiller = tflw.Distiller(student, teacher, temperature=args.temperature, alpha=args.alpha,
                               cached_teacher_logits=not relation, **extra)
    distiller.compile(keras.optimizers.Adam(learning_rate), LOSS, metrics=["accuracy"])
    return distiller


def one_seed(seed: int, teacher, logits, train, test, args, workdir: str) -> dict:
    (x, y), (x_test, y_test) = train, test
    fit = {"epochs": args.epochs, "batch_size": args.batch_size, "verbose": 2}
    qat_fit = {**fit, "epochs": args.qat_epochs}
    keras.utils.set_random_seed(seed)
    alone = compiled(build_student(args), 3e-3)
    alone.fit(x, y, **fit)
    qat_alone = compiled(tflw.quantize_model(alone), args.qat_learning_rate)
    qat_alone.fit(x, y, **qat_fit)
    results = {"A student alone (float)": float(alone.evaluate(x_test, y_test, verbose=0)[1])}
    runs = [("B student + KD (float)", "D QAT student + KD (TFLM int8)", "")]
    if args.relational:
        runs += [(None, "E QAT student + KD + AT (TFLM int8)", "attention"),
                 (None, "F QAT student + KD + SP (TFLM int8)", "similarity")]
    quantized = {"C QAT student alone (TFLM int8)": qat_alone}
    for float_row, qat_row, relation in runs:
        keras.utils.set_random_seed(seed)
        student = build_student(args)
        targets = y if relation else (y, logits)
        distilled(student, teacher, 3e-3, args, relation).fit(x, targets, **fit)
        if float_row:
            results[float_row] = float(compiled(student, 3e-3).evaluate(x_test, y_test,
                                                                        verbose=0)[1])
        quantized[qat_row] = tflw.quantize_model(student)
        distilled(quantized[qat_row], teacher, args.qat_learning_rate, args, relation).fit(
            x, targets, **qat_fit)
    for row, model in quantized.items():
        name = f"{row.split()[0]}_{seed}"
        results[row] = on_device(model, x_test, y_test, workdir, name)["tflm_accuracy"]
    return dict(sorted(results.items()))


def summary(results: list, teacher_accuracy: float) -> tuple:
    """Rows (mean, spread, per seed), D - C per seed, and E - D, F - D per seed."""
    rows = [{"run": "teacher (float)", "mean": teacher_accuracy, "spread": 0.0,
             "per_seed": f"{teacher_accuracy:.2%}"}]
    for name in results[0]:
        values = np.array([r[name] for r in results])
        rows.append({"run": name, "mean": float(values.mean()),
                     "spread": float(values.max() - values.min()),
                     "per_seed": " ".join(f"{v:.2%}" for v in values)})
    kd = "D QAT student + KD (TFLM int8)"
    gain = np.array([r[kd] - r["C QAT student alone (TFLM int8)"] for r in results])
    relational = {f"{row[0]} - D": [r[row] - r[kd] for r in results]
                  for row in results[0] if row[0] in "EF"}
    return rows, gain, relational


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--qat-epochs", type=int, default=2)
    parser.add_argument("--teacher-epochs", type=int, default=4)
    parser.add_argument("--student", choices=["cnn", "mlp"], default="cnn",
                        help="cnn: the demo CNN; mlp: two dense hidden layers")
    parser.add_argument("--student-width", type=int, default=16,
                        help="the CNN's first channels, or the MLP's hidden units")
    parser.add_argument("--temperature", type=float, default=4.0)
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--train-samples", type=int, default=0, help="0: all 60,000")
    parser.add_argument("--qat-learning-rate", type=float, default=5e-4)
    parser.add_argument("--relational", action="store_true",
                        help="add attention transfer (E) and similarity-preserving (F) rows")
    args = parser.parse_args()

    train, test = load_mnist(require("mnist.npz"))
    workdir = tempfile.mkdtemp(prefix="tflw-bench-")
    keras.utils.set_random_seed(100)
    teacher = compiled(build_teacher("same" if args.relational else "valid"), 1e-3)
    teacher.fit(*train, epochs=args.teacher_epochs, batch_size=args.batch_size, verbose=2)
    teacher_accuracy = float(teacher.evaluate(*test, verbose=0)[1])
    if args.train_samples:
        train = (train[0][:args.train_samples], train[1][:args.train_samples])
    logits = teacher_logits(teacher, train[0])

    results = []
    for seed in args.seeds:  # written after each seed: a stopped run keeps what it measured
        results.append(one_seed(seed, teacher, logits, train, test, args, workdir))
        rows, gain, relational = summary(results, teacher_accuracy)
        student = ("" if args.student == "cnn"
                   else f"_{args.student}{args.student_width}_e{args.epochs}")
        suffix = "_relational" if args.relational else ""
        path = write_results(f"distill_{args.train_samples or 'full'}{student}{suffix}", {
            "command": "python -m benchmarks.distill " + " ".join(sys.argv[1:]),
            "date": time.strftime("%Y-%m-%d"),
            "settings": vars(args) | {"cpu_count": os.cpu_count()},
            "runs": rows, "kd_gain_per_seed": gain.tolist(), "gain_over_kd_per_seed": relational,
        })
    print(format_table(rows, COLUMNS))
    for name, values in relational.items():
        print(f"{name}: " + ", ".join(f"{v:+.2%}" for v in values))
    print(f"\nKD gain on the int8 student (D - C): {gain.mean():+.2%} "
          f"(per seed {', '.join(f'{g:+.2%}' for g in gain)})")
    print(f"written: {path}")


if __name__ == "__main__":
    main()
