"""Runs a flatbuffer in the TFLite-Micro interpreter, in a process of its own.

The interpreter aborts the whole process on some models it cannot handle; running it
here means such an abort only ends this worker. Invoked by `tflw.export.tflm` as a
script, so that it imports neither tflw nor TensorFlow:

    python path/to/tflm_worker.py request.npz reply.npz
"""

import os
import re
import sys
import tempfile
import time
from typing import Optional

# Run as a script, Python put this folder first on sys.path: its modules must not shadow
# top-level ones that numpy or tflite_micro import.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path = [path for path in sys.path if os.path.abspath(path or ".") != _HERE]

import numpy as np
from tflite_micro.python.tflite_micro import runtime

ARENA_ALIGNMENT = 16
LARGEST_ARENA = 64 * 1024 * 1024
EXIT_INTERPRETER_ERROR = 3


def _interpreter(model: bytes, arena_size: int):
    try:
        return runtime.Interpreter.from_bytes(model, arena_size=arena_size)
    except RuntimeError:
        return None


def _fits(model: bytes, arena_size: int) -> bool:
    """Whether AllocateTensors() succeeds in `arena_size` bytes.

    Each try runs in a forked child: measured with TFLite-Micro's python package, some
    kernels (MEAN) crash with SIGSEGV instead of failing when the arena is too small.
    """
    if not hasattr(os, "fork"):
        return _interpreter(model, arena_size) is not None
    child = os.fork()
    if child == 0:
        os.dup2(os.open(os.devnull, os.O_WRONLY), 2)  # the failed tries' allocation messages
        os._exit(0 if _interpreter(model, arena_size) is not None else 1)
    _, status = os.waitpid(child, 0)
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def _recorded_total(model: bytes, arena_size: int) -> Optional[int]:
    """The bytes the recording allocator says an interpreter in a large enough arena used
    (its `print_allocations()` goes to file descriptor 2, read back here)."""
    interpreter = _interpreter(model, arena_size)
    if interpreter is None:
        return None
    with tempfile.TemporaryFile() as printed:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(printed.fileno(), 2)
        try:
            interpreter.print_allocations()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        printed.seek(0)
        found = re.search(rb"Arena allocation total (\d+) bytes", printed.read())
    return None if found is None else int(found.group(1))


def smallest_arena(model: bytes) -> int:
    """Smallest arena (to 16 bytes) in which the interpreter allocates all tensors."""
    high = max(16 * 1024, len(model))
    while not _fits(model, high):
        if high >= LARGEST_ARENA:
            raise RuntimeError(f"AllocateTensors() failed even with a {LARGEST_ARENA} B arena")
        high *= 2
    # The recorded total is the answer: two tries confirm it instead of a dozen in bisection.
    total = _recorded_total(model, high)
    if total is not None and total <= high:
        guess = -(-total // ARENA_ALIGNMENT) * ARENA_ALIGNMENT
        if _fits(model, guess) and not _fits(model, guess - ARENA_ALIGNMENT):
            return guess
    low = 0
    while high - low > ARENA_ALIGNMENT:
        middle = (low + high) // 2 // ARENA_ALIGNMENT * ARENA_ALIGNMENT
        if not _fits(model, middle):
            low = middle
        else:
            high = middle
    return high


def run(request: dict) -> dict:
    """Invoke the model once per sample; inputs and outputs are int8/int16 arrays."""
    model = request["model"].tobytes()
    arena = smallest_arena(model)
    interpreter = runtime.Interpreter.from_bytes(model, arena_size=arena)
    interpreter.print_allocations()  # on stderr: read by tflw.export.arena_32bit
    input_count, output_count = int(request["input_count"]), int(request["output_count"])
    outputs = [[] for _ in range(output_count)]
    invoke_seconds = 0.0
    total = len(request["input_0"])
    every = max(1, total // 100)
    for sample in range(total):
        if sample % every == 0:
            print(f"tflw-progress {sample} {total}", flush=True)  # read by tflw.export.tflm
        for index in range(input_count):
            interpreter.set_input(request[f"input_{index}"][sample:sample + 1], index)
        start = time.perf_counter()
        interpreter.invoke()
        invoke_seconds += time.perf_counter() - start
        for index in range(output_count):
            outputs[index].append(interpreter.get_output(index)[0])
    reply = {f"output_{index}": np.stack(values) for index, values in enumerate(outputs)}
    reply["arena_bytes"] = np.array(arena)
    reply["invoke_seconds"] = np.array(invoke_seconds / len(request["input_0"]))
    return reply


def main(request_path: str, reply_path: str) -> int:
    request = dict(np.load(request_path))
    try:
        reply = run(request)
    except RuntimeError as error:
        print(f"tflw-interpreter-error: {error}", file=sys.stderr)
        return EXIT_INTERPRETER_ERROR
    np.savez(reply_path, **reply)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
