"""fit_board against the best uniform baseline at the same budget and training budget.

    python -m benchmarks.fit_board [--models demo gesture resnet8] [--seeds 3] [--epochs 2]

For each model: a float model trained once (seed 0); budgets of 1/2, 1/4 and 1/8 of its
int8 flatbuffer's flash and 1/2 of its measured arena; for each budget and seed,
`tflw.fit_board` and three uniform baselines, each fine-tuned for the same epochs with
the same distillation from the float model:

- bits: one weight bit width for every layer (8, 4, 2; below 8 only with DECODE);
- channels: one keep ratio for every channel group (1 to 1/8 in steps of 1/8);
- width: one width multiplier (the model rebuilt narrower, trained from scratch for the
  float epochs on the fine-tuning data, then fine-tuned), for models given as builders;
  fit_board gets the same builder, `make(width, resolution)`, and trains its width and
  resolution candidates the same way (the baseline stays at full resolution).

Each baseline takes the largest setting whose estimated cost fits, and the next smaller
one while its measured bytes do not. Accuracy is top-1 on the test set (ResNet-8: its
first 2,000 in a random order; gestures: half of the archive's 700 test series, drawn at
random), outputs from TFLite-Micro. The search selects on data the float model never saw:
a tenth of the training set held out (gestures: the other 350 test series). With `decode`, flash is the LUT-compressed flatbuffer plus DECODE's code;
budgets below DECODE's own code are run without it only (it cannot pay there).

Rows are appended to results/fit_board.json as they finish; a rerun skips rows present.
results/fit_board.png plots accuracy against flash for every row (`--plot-only` redraws it).
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import tflw  # noqa: E402
from benchmarks.common import RESULTS, compiled, format_table, machine  # noqa: E402
from benchmarks.shared_data import (CIFAR10_FILES, load_cifar10, load_gestures,  # noqa: E402
                                    load_mnist, locate)
from benchmarks.zoo import augment  # noqa: E402
from tflw.demo import build_demo_model  # noqa: E402
from tflw.distillation.distiller import teacher_logits  # noqa: E402
from tflw.errors import ModelTooLargeError  # noqa: E402
from tflw.export.lut import DECODE_CODE_BYTES  # noqa: E402
from tflw.export.verify import verify  # noqa: E402
from tflw.search.candidate import measure_candidate, top1, train_candidate  # noqa: E402
from tflw.search.problem import Config, cost_model  # noqa: E402
from tflw.search.resolution import resize_inputs, scaled_shape  # noqa: E402
from tflw.search.space import read_space  # noqa: E402

NAME = "fit_board"
# Fine-tuning rates, chosen per candidate on held-out data as fit_board's default does;
# rows without "learning_rates" were fine-tuned at 1e-2 alone. Width from scratch: 1e-2.
LEARNING_RATES = (2e-3, 1e-2)
UNBOUNDED = 10**9  # the budget a row leaves free
KEEPS = tuple(k / 8 for k in range(8, 0, -1))
WIDTHS = tuple(k / 8 for k in range(8, 0, -1))


def mnist_task(args):
    (x, y), (x_test, y_test) = load_mnist(locate("mnist.npz"))
    return dict(make=lambda w, r: build_demo_model(width=max(1, round(16 * w)),
                                                   input_shape=scaled_shape((28, 28, 1), r)),
                data=(x, y),
                test=(x_test, y_test), float_epochs=3, fine_tune=10_000, batch=64, lr=3e-3,
                test_samples=10_000, val_samples=2000)


def gesture_task(args):
    (x, y), (x_test, y_test) = load_gestures(locate("gestures-wiimote.npz"))
    pick = np.random.default_rng(0).permutation(len(x_test))  # the archive lists them by class
    x_test, y_test = x_test[pick], y_test[pick]
    # 300 series: trained as benchmarks/zoo.py trains them, on 20 shifted copies of each;
    # the archive's 700 test series shuffled: the first 350 are the search's, the rest the test
    return dict(make=lambda w, r: tflw.models.gesture_cnn(steps=round(128 * r),
                                                          filters=max(1, round(32 * w)),
                                                          dropout=0.3),
                data=(x, y), validation=(x_test[:350], y_test[:350]),
                test=(x_test[350:], y_test[350:]), float_epochs=12, fine_tune=None, batch=64,
                lr=2e-3, test_samples=350, val_samples=2000,
                augment=lambda series, seed: augment(series, 20, np.random.default_rng(seed)))


def resnet8_task(args):
    (x, y), (x_test, y_test) = load_cifar10(locate(*CIFAR10_FILES))
    pick = np.random.default_rng(0).permutation(len(x_test))  # the archive lists them by class
    return dict(make=None, model=tflw.models.resnet8, data=(x, y),
                test=(x_test[pick], y_test[pick]),
                float_epochs=4, fine_tune=10_000, batch=64, lr=3e-3,
                test_samples=2000, val_samples=1000)


TASKS = {"demo": mnist_task, "gesture": gesture_task, "resnet8": resnet8_task}


def train_float(task, width: float = 1.0, seed: int = 0):
    """The float model, trained on the training data less the search's held-out part."""
    keras.utils.set_random_seed(seed)
    model = task["make"](width, 1.0) if task.get("make") else task["model"]()
    compiled(model, task["lr"])
    x, y = augmented(task, *held_out(task)[0], seed)
    start = time.perf_counter()
    model.fit(x, y, epochs=task["float_epochs"], batch_size=task["batch"], verbose=0)
    return model, (time.perf_counter() - start) / task["float_epochs"]


def held_out(task) -> tuple:
    """(training data, validation data for the search), the same for every seed and never
    seen by the float model: a tenth of the training set, or the task's own."""
    x, y = task["data"]
    if "validation" in task:
        return (x, y), task["validation"]
    order = np.random.default_rng(0).permutation(len(x))
    held = len(x) // 10
    return (x[order[held:]], y[order[held:]]), (x[order[:held]], y[order[:held]])


def split(task, seed: int):
    """(fine-tuning data, validation data for the search): the fine-tuning subset drawn
    by `seed`."""
    (x, y), validation = held_out(task)
    train = np.random.default_rng(seed).permutation(len(x))
    if task["fine_tune"]:
        train = train[:task["fine_tune"]]
    return augmented(task, x[train], y[train], seed), validation


def augmented(task, x, y, seed: int) -> tuple:
    """The training data as the task trains on it (shifted copies, for the gestures)."""
    if "augment" not in task:
        return x, y
    copies = task["augment"](x, seed)
    return copies, np.repeat(y, len(copies) // len(x))


def test_accuracy(tflite_path, task, input_shape=None) -> float:
    """Top-1 in TFLite-Micro on the test set, resized to `input_shape` where given."""
    x_test, y_test = (data[:task["test_samples"]] for data in task["test"])
    if input_shape is not None:
        x_test = resize_inputs(x_test, input_shape)
    return top1(verify(tflite_path, x_test).outputs[0], y_test)


def uniform(task, model, problem, family, budget, decode, train, val, args, workdir, seed):
    """The best uniform setting of `family` within `budget`, trained and measured."""
    space = problem.space
    if family == "bits":
        settings = [b for b in (8, 4, 2) if decode or b == 8]
        configs = [Config({l.name: b for l in space.layers}, {g: 1.0 for g in space.groups})
                   for b in settings]
    elif family == "channels":
        settings = KEEPS
        configs = [Config({l.name: 8 for l in space.layers}, {g: k for g in space.groups})
                   for k in settings]
    else:
        settings, configs = WIDTHS, [None] * len(WIDTHS)
    logits = teacher_logits(model, train[0])
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    for setting, config in zip(settings, configs):
        student, estimate = model, None
        if config is None:  # a narrower model, estimated with the reference's overheads
            narrow = cost_model(read_space(task["make"](setting, 1.0)), calibrated_by=problem)
            config = Config({l.name: 8 for l in narrow.space.layers},
                            {g: 1.0 for g in narrow.space.groups})
            estimate = narrow.estimate(config)
        estimate = estimate or problem.estimate(config)
        decoded = decode and min(config.bits.values()) < 8
        if (estimate["flash"] + (DECODE_CODE_BYTES if decoded else 0) > budget["flash"]
                or estimate["arena"] > budget["arena"]):
            continue
        if family == "width":  # trained as fit_board trains its width candidates
            keras.utils.set_random_seed(seed)
            student = compiled(task["make"](setting, 1.0), max(LEARNING_RATES))
            student.fit(*train, epochs=task["float_epochs"], batch_size=task["batch"], verbose=0)
        qat, rate = train_candidate(student, config, *train, logits, loss, args.epochs,
                                    task["batch"], LEARNING_RATES, seed, val)
        # as fit_board does: an offline arena plan only where the arena budget binds
        result, measured = measure_candidate(qat, workdir / f"{family}-{setting:g}", *val, decode,
                                             minimize_arena=budget["arena"] < UNBOUNDED)
        if measured.fits(budget):
            return {"setting": setting, "flash_bytes": measured.flash_bytes,
                    "arena_bytes": measured.arena_bytes, "runtime": measured.runtime,
                    "learning_rate": rate, "test_accuracy": test_accuracy(result.tflite_path, task)}
    return None


def run_row(task, name, model, reference, budget_name, budget, decode, seed, args, workdir):
    train, val = split(task, seed)
    board = tflw.boards.get("portenta_h7")
    row = {"model": name, "budget": budget_name, "decode": decode, "seed": seed,
           "max_flash": budget["flash"], "max_arena": budget["arena"],
           "learning_rates": list(LEARNING_RATES)}
    start = time.perf_counter()
    try:
        fit = tflw.fit_board(model, board, train, val, decode=decode, max_flash=budget["flash"],
                             max_arena=budget["arena"], epochs=args.epochs, seed=seed,
                             candidates=args.candidates, out_dir=workdir / "fit",
                             batch_size=task["batch"], learning_rates=LEARNING_RATES,
                             make=task.get("make"), widths=WIDTHS[1:],
                             float_epochs=task["float_epochs"],
                             keeps=KEEPS, accuracy_samples=task["val_samples"])
        m = fit.trial.measured
        row["fit"] = {"flash_bytes": m.flash_bytes, "arena_bytes": m.arena_bytes,
                      "runtime": m.runtime, "config": fit.trial.config.to_dict(),
                      "learning_rate": m.learning_rate, "resolution": fit.trial.resolution,
                      "trials": len(fit.trials) - 1,
                      "test_accuracy": test_accuracy(fit.export.tflite_path, task,
                                                     tuple(fit.model.input_shape[1:]))}
    except ModelTooLargeError as error:
        row["fit"] = {"nothing_fits": str(error)[:300]}
    row["fit_seconds"] = time.perf_counter() - start
    problem = cost_model(read_space(model, bits=(8, 4, 2) if decode else (8,), keeps=KEEPS))
    problem.calibrate(reference["flash_bytes"], reference["arena_bytes"])
    families = ["bits", "channels"] + (["width"] if task.get("make") else [])
    row["uniform"] = {f: uniform(task, model, problem, f, budget, decode, train, val, args,
                                 workdir / "uniform", seed) for f in families}
    scores = [u["test_accuracy"] for u in row["uniform"].values() if u]
    row["best_uniform_accuracy"] = max(scores) if scores else None
    row["seconds"] = time.perf_counter() - start
    return row


def summarize(rows) -> list:
    table = []
    for row in rows:
        fit = row["fit"].get("test_accuracy")
        best = row["best_uniform_accuracy"]
        table.append({"model": row["model"], "budget": row["budget"],
                      "decode": "yes" if row["decode"] else "no", "seed": row["seed"],
                      "fit": fit, "uniform": best,
                      "gain": None if fit is None or best is None else 100 * (fit - best)})
    return table


def plot(rows, path: Path) -> None:
    """Test accuracy against measured flash, per model: fit_board's choices and every
    uniform baseline's, each row (budget, seed, runtime) one point."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(row["model"] for row in rows))
    figure, axes = plt.subplots(1, len(names), figsize=(5.5 * len(names), 4), squeeze=False)
    for axis, name in zip(axes[0], names):
        series = {"fit_board": [], "uniform bits": [], "uniform channels": [], "uniform width": []}
        for row in (r for r in rows if r["model"] == name):
            if "test_accuracy" in row["fit"]:
                series["fit_board"].append((row["fit"]["flash_bytes"], row["fit"]["test_accuracy"]))
            for family, result in row["uniform"].items():
                if result:
                    series[f"uniform {family}"].append((result["flash_bytes"],
                                                        result["test_accuracy"]))
        for (label, points), marker in zip(series.items(), "o^sD"):
            if points:
                axis.scatter(*zip(*[(f, 100 * a) for f, a in points]), label=label,
                             marker=marker, alpha=0.7)
        axis.set_title(name)
        axis.set_xlabel("flash, measured (bytes)")
        axis.set_ylabel("test accuracy in TFLite-Micro (%)")
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["demo", "gesture"], choices=TASKS)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2, help="fine-tuning epochs per candidate")
    parser.add_argument("--candidates", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=Path("build/fit_board"))
    parser.add_argument("--plot-only", action="store_true",
                        help="redraw results/fit_board.png from the JSON, run nothing")
    parser.add_argument("--decode", nargs="+", type=lambda v: v == "yes", default=[False, True],
                        help="'no', 'yes' or both (default): runtimes without and with DECODE")
    args = parser.parse_args(argv)
    path = RESULTS / f"{NAME}.json"
    saved = json.loads(path.read_text()) if path.is_file() else {}
    rows, models = saved.get("rows", []), saved.get("models", {})
    done = {(r["model"], r["budget"], r["decode"], r["seed"]) for r in rows}
    if args.plot_only:
        plot(rows, RESULTS / f"{NAME}.png")
        return

    def write():
        payload = {"machine": machine(), "command": "python -m benchmarks.fit_board " + " ".join(
            sys.argv[1:] if argv is None else argv), "date": time.strftime("%Y-%m-%d"),
            "models": models, "rows": rows, "summary": summarize(rows)}
        path.write_text(json.dumps(payload, indent=2) + "\n")

    for name in args.models:
        task = TASKS[name](args)
        model, epoch_seconds = train_float(task)
        x_test, y_test = task["test"]
        reference_qat = tflw.quantize_model(model, calibration_data=task["data"][0][:512])
        result = tflw.export(reference_qat, args.workdir / name / "int8", overwrite=True,
                             sample_inputs=x_test[:200], minimize_arena=False)
        reference = {"flash_bytes": result.flatbuffer_bytes, "arena_bytes": result.arena_bytes,
                     "float_accuracy": float(model.evaluate(x_test, y_test, verbose=0)[1]),
                     "int8_test_accuracy": test_accuracy(result.tflite_path, task),
                     "float_epoch_seconds": epoch_seconds,
                     "command": "python -m benchmarks.fit_board " + " ".join(
                         sys.argv[1:] if argv is None else argv),
                     "date": time.strftime("%Y-%m-%d")}
        models[name] = reference
        print(name, reference, flush=True)
        budgets = {f"flash/{d}": {"flash": reference["flash_bytes"] // d,
                                  "arena": UNBOUNDED} for d in (2, 4, 8)}
        budgets["arena/2"] = {"flash": UNBOUNDED, "arena": reference["arena_bytes"] // 2}
        for seed in range(args.seeds):
            for budget_name, budget in budgets.items():
                for decode in args.decode:
                    if decode and (budget["flash"] <= DECODE_CODE_BYTES
                                   or budget_name.startswith("arena")):
                        continue  # DECODE's code alone is over the budget; it adds arena
                    if (name, budget_name, decode, seed) in done:
                        continue
                    workdir = args.workdir / name / f"{budget_name.replace('/', '_')}-{decode}-{seed}"
                    row = run_row(task, name, model, reference, budget_name, budget, decode,
                                  seed, args, workdir)
                    row["search_cost_float_epochs"] = row["fit_seconds"] / epoch_seconds
                    rows.append(row)
                    write()
                    print(format_table(summarize(rows)[-1:], COLUMNS), flush=True)
    write()
    plot(rows, RESULTS / f"{NAME}.png")
    print(format_table(summarize(rows), COLUMNS))


COLUMNS = (("model", "model", "{}"), ("budget", "budget", "{}"), ("decode", "DECODE", "{}"),
           ("seed", "seed", "{}"), ("fit", "fit_board", "{:.2%}"),
           ("uniform", "best uniform", "{:.2%}"), ("gain", "gain pp", "{:+.2f}"))

if __name__ == "__main__":
    main()
