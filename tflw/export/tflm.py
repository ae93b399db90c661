"""Run a flatbuffer in the real TFLite-Micro interpreter without risking the caller.

```python
run = run_tflm(model_bytes, [x_int8], output_count=1)
run.outputs[0], run.arena_bytes, run.invoke_seconds
```
"""

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np

from tflw.errors import InterpreterError

_EXIT_INTERPRETER_ERROR = 3

# What most often makes TFLite-Micro abort instead of failing cleanly, from what users hit.
_ABORT_HINTS = (
    "an op with a shape or type its int8 kernel does not support (run tflw.export on the "
    "float model with a representative dataset and check report.json's op list), "
    "a tensor that is not int8 in a model declared fully integer, or a degenerate "
    "quantization scale (a constant channel)."
)


class TflmRun(NamedTuple):
    """What one worker run returns."""

    outputs: list  # one array per model output, sample axis first
    arena_bytes: int  # smallest arena in which AllocateTensors() succeeded
    invoke_seconds: float  # mean wall time of one Invoke() on this host


def run_tflm(
    model_bytes: bytes,
    inputs: Sequence[np.ndarray],
    output_count: int,
    timeout_s: float = 600.0,
) -> "TflmRun":
    """Invoke `model_bytes` on each sample of `inputs` in a separate Python process.

    Args:
        model_bytes: the flatbuffer.
        inputs: one array per model input, already quantized, sample axis first.
        output_count: number of model outputs.
        timeout_s: the worker is killed after this many seconds.

    Returns:
        A `TflmRun`.

    Raises:
        InterpreterError: the interpreter refused the model, crashed or hung.
    """
    with tempfile.TemporaryDirectory(prefix="tflw-tflm-") as folder:
        request, reply = os.path.join(folder, "request.npz"), os.path.join(folder, "reply.npz")
        arrays = {f"input_{i}": np.asarray(x) for i, x in enumerate(inputs)}
        np.savez(
            request, model=np.frombuffer(model_bytes, dtype=np.uint8),
            input_count=len(inputs), output_count=output_count, **arrays,
        )
        try:
            done = subprocess.run(
                [sys.executable, "-m", "tflw.export.tflm_worker", request, reply],
                capture_output=True, text=True, timeout=timeout_s, env=_worker_environment(),
            )
        except subprocess.TimeoutExpired as error:
            raise InterpreterError(
                f"TFLite-Micro did not finish within {timeout_s:.0f} s; the model may be too "
                "large for a host check, or the interpreter hung."
            ) from error
        if done.returncode != 0:
            raise InterpreterError(_explain(done.returncode, done.stderr))
        with np.load(reply) as data:
            outputs = [data[f"output_{i}"] for i in range(output_count)]
            return TflmRun(outputs, int(data["arena_bytes"]), float(data["invoke_seconds"]))


def _worker_environment() -> dict:
    """This environment, with the folder that holds this `tflw` first on PYTHONPATH: the
    worker must import the same tflw even when it is not installed and the caller has
    changed directory since importing it."""
    package_parent = str(Path(__file__).resolve().parents[2])
    paths = [package_parent, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def _explain(returncode: int, stderr: str) -> str:
    tail = "\n".join(line for line in stderr.strip().splitlines()[-8:])
    if returncode == _EXIT_INTERPRETER_ERROR:
        return f"TFLite-Micro refused the model:\n{tail}"
    if returncode < 0:
        name = signal.Signals(-returncode).name
        return (
            f"TFLite-Micro crashed ({name}) while loading or running the model; your Python "
            f"session is unaffected. Likely causes: {_ABORT_HINTS}\nInterpreter output:\n{tail}"
        )
    return f"TFLite-Micro worker failed (exit {returncode}):\n{tail}"
