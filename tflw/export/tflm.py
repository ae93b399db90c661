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
import threading
from pathlib import Path
from typing import NamedTuple, Sequence

import keras
import numpy as np

from tflw.errors import InterpreterError

_EXIT_INTERPRETER_ERROR = 3
# Started by path, not as `-m tflw.export.tflm_worker`: importing the tflw package would
# load TensorFlow, 4-5 s per run, for a worker that needs only numpy and tflite_micro.
_WORKER = Path(__file__).with_name("tflm_worker.py")

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
    recording: str = ""  # the recording allocator's lines (`tflw.export.arena_32bit`)


def run_tflm(
    model_bytes: bytes,
    inputs: Sequence[np.ndarray],
    output_count: int,
    timeout_s: float = 600.0,
    progress: bool = False,
) -> "TflmRun":
    """Invoke `model_bytes` on each sample of `inputs` in a separate Python process.

    Args:
        model_bytes: the flatbuffer.
        inputs: one array per model input, already quantized, sample axis first.
        output_count: number of model outputs.
        timeout_s: the worker is killed after this many seconds.
        progress: show a progress bar of the samples run (the CLI does; library calls
            stay quiet by default).

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
        returncode, stderr = _run_worker(request, reply, folder, timeout_s, progress)
        if returncode is None:
            raise InterpreterError(
                f"TFLite-Micro did not finish within {timeout_s:.0f} s; the model may be too "
                "large for a host check, or the interpreter hung."
            )
        if returncode != 0:
            raise InterpreterError(_explain(returncode, stderr))
        with np.load(reply) as data:
            outputs = [data[f"output_{i}"] for i in range(output_count)]
            recording = "\n".join(line for line in stderr.splitlines()
                                  if line.startswith("[RecordingMicroAllocator]"))
            return TflmRun(outputs, int(data["arena_bytes"]), float(data["invoke_seconds"]),
                           recording)


def _run_worker(request: str, reply: str, folder: str, timeout_s: float, progress: bool):
    """(exit status or None on timeout, stderr) of the worker; with `progress`, a bar of
    the samples it has run."""
    with open(os.path.join(folder, "stderr.txt"), "w+") as stderr:
        worker = subprocess.Popen(
            [sys.executable, str(_WORKER), request, reply],
            stdout=subprocess.PIPE, stderr=stderr, text=True,
        )
        timer = threading.Timer(timeout_s, worker.kill)
        timer.start()
        bar = None
        for line in worker.stdout:
            if progress and line.startswith("tflw-progress "):
                done, total = map(int, line.split()[1:])
                bar = bar or keras.utils.Progbar(total, unit_name="sample")
                bar.update(done)
        worker.wait()
        timed_out = not timer.is_alive()
        timer.cancel()
        if bar is not None and worker.returncode == 0:
            bar.update(bar.target, finalize=True)
        stderr.seek(0)
        return (None if timed_out else worker.returncode), stderr.read()


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
