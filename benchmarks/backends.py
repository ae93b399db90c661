"""Training step time of tflw's models on each Keras backend, as a ratio to float training.

    python -m benchmarks.backends [--backends tensorflow jax torch] [--steps 80]

For each backend a child process (KERAS_BACKEND set before Keras loads) trains ResNet-8
on CIFAR-10-shaped random data, one batch size, the same number of steps: the float model,
its int8 QAT model (`quantize_model`), a 50 % pruned model (`prune_model`, with its
callback) and a QAT student distilled from the float model (`Distiller`). The table gives
the median milliseconds per step after warm-up and each ratio to the float step in the
same process. Random data: only time is measured here. On a lent GPU machine (JAX and
PyTorch, no TensorFlow) run it with `--backends jax torch`.
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("float", "qat", "pruned", "distilled_qat")


def _time_each_kind(steps: int, batch_size: int) -> dict:
    """Median seconds per training step of each kind, in this process's backend."""
    import keras
    import numpy as np

    import tflw
    from benchmarks.common import compiled, fit_timed

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (steps * batch_size, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, steps * batch_size)
    warmup = steps // 4

    def timed(model, callbacks=()) -> float:
        return fit_timed(compiled(model, 1e-3), (x, y), epochs=1, batch_size=batch_size,
                         callbacks=callbacks, warmup=warmup, verbose=0)

    teacher = tflw.models.resnet8()
    seconds = {"float": timed(teacher)}
    seconds["qat"] = timed(tflw.quantize_model(teacher, calibration_data=x[:64]))
    pruned = tflw.prune_model(teacher, tflw.ConstantSparsity(0.5))
    seconds["pruned"] = timed(pruned, callbacks=[tflw.UpdatePruningStep()])
    student = tflw.quantize_model(tflw.models.resnet8(), calibration_data=x[:64])
    seconds["distilled_qat"] = timed(tflw.Distiller(student, teacher, temperature=4.0,
                                                    alpha=0.5))
    return seconds


def _run_child(backend: str, steps: int, batch_size: int) -> dict:
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.backends", "--child", "--steps", str(steps),
         "--batch-size", str(batch_size)],
        env=env, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        return {"backend": backend, "error": done.stderr.strip().splitlines()[-1]}
    seconds = json.loads(done.stdout.strip().splitlines()[-1])
    row = {"backend": backend}
    for kind in KINDS:
        row[f"{kind}_ms"] = seconds[kind] * 1e3
        row[f"{kind}_ratio"] = seconds[kind] / seconds["float"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "jax", "torch"])
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_time_each_kind(args.steps, args.batch_size)))
        return

    from benchmarks.common import format_table, write_results

    rows = []
    for backend in args.backends:
        rows.append(_run_child(backend, args.steps, args.batch_size))
        print(rows[-1], flush=True)
    columns = [("backend", "backend", "{}")] + [
        (f"{kind}_ms", f"{kind} ms/step", "{:.1f}") for kind in KINDS] + [
        (f"{kind}_ratio", f"{kind} / float", "{:.2f}") for kind in KINDS[1:]]
    print(format_table(rows, columns))
    print(f"wrote {write_results('backends', {'settings': vars(args), 'rows': rows})}")


if __name__ == "__main__":
    main()
