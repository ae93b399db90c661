"""The tensor arena a 32-bit microcontroller needs, from the host interpreter's recording.

TFLite-Micro's arena is a head of non-persistent buffers (the planned tensors and the
kernels' scratch buffers: byte counts, the same on every word size) and a tail of
persistent structs and kernel data, which hold pointers and so are smaller on a 32-bit
MCU. The host interpreter's recording allocator lists each kind of persistent allocation
with its count; on a 32-bit build each struct kind has a fixed size, the quantization
structs shrink by half, the kernels' OpData structs that hold pointers shrink by what their
pointers lose (`OPDATA_SHRINK`), and one figure is fitted (`benchmarks/arena_32bit.py`,
against Cortex-M4 builds of the same TFLite-Micro by `tflw firmware check`): the
allocator's own structs, which the recording does not list, take 410 bytes less.

```python
part = arena_on_32_bit(run.recording, model_counts(model_bytes))  # run: a TflmRun
part["arena_bytes"], part["non_persistent_bytes"], part["persistent_bytes"]
```
"""

import re
from dataclasses import dataclass
from typing import Optional

from tflite_micro.python.tflite_micro.runtime import (
    convert_bytearray_to_object,
    get_builtin_code_from_operator_code,
)

from tflw.export.flatbuffer import OP_NAMES
from tflw.export.memory_plan import ALIGNMENT

# Bytes of one allocation of each kind on a 32-bit MCU (a Cortex-M4 build records these).
STRUCT_BYTES_32 = {"TfLiteEvalTensor data": 12, "Persistent TfLiteTensor data": 32,
                   "NodeAndRegistration struct": 32}
QUANTIZATION = "Persistent TfLiteTensor quantization data"
KERNEL_DATA = "Persistent buffer data"
# Each quantization record is a TfLiteAffineQuantization (two pointers and an int: 24 B on
# a 64-bit host, 12 on a 32-bit MCU) and its zero-point array (the same on both).
QUANTIZATION_SHRINK_PER_ALLOCATION = 6.0
# The kernels' persistent OpData structs that hold pointers, and how many bytes each loses
# with 4-byte pointers (read from TFLite-Micro's conv.h, fully_connected.h, types.h'
# SoftmaxParams and ConcatenationParams: two to five pointers and their alignment); the
# other reference kernels' OpData hold none. Checked against the Cortex-M4 builds of
# benchmarks/results/arena_32bit.json (TFLite-Micro 90b983c).
OPDATA_SHRINK = {"CONV_2D": 16, "DEPTHWISE_CONV_2D": 16, "FULLY_CONNECTED": 16,
                 "SOFTMAX": 16, "CONCATENATION": 16}
# The allocator's own structs (the recording does not list them), fitted on those builds.
UNRECORDED_SHRINK = 410
# Planning the head (MicroAllocator::CommitStaticMemoryPlan) takes temporary memory: an
# AllocationInfo (size_t, pointer, three ints, bool) per tensor and scratch request, and
# GreedyMemoryPlanner::per_buffer_size() per planned buffer; PLANNING_SPARE of each for the
# kernels' scratch requests and alignment. On a small model this, not the plan, sets the
# smallest arena (the two-input model of tests/export/test_multi_io.py: 2,336 B on a
# Cortex-M4 for 1,752 B used).
ALLOCATION_INFO_BYTES_32 = 24
PLANNER_BYTES_PER_BUFFER = 40
PLANNING_SPARE = 8

_KIND = re.compile(r"'([^']+)' used (\d+) bytes with alignment overhead "
                   r"\(requested (\d+) bytes for (\d+) ")
_PART = re.compile(r"Arena allocation (total|head|tail) (\d+) bytes")


def recorded_allocations(printed: str) -> Optional[dict]:
    """{"total", "head", "tail": bytes, "kinds": {kind: (used, requested, count)}} from
    the interpreter's `print_allocations()` text, or None if it printed none."""
    parts = {name: int(size) for name, size in _PART.findall(printed)}
    if set(parts) != {"total", "head", "tail"}:
        return None
    kinds = {kind: (int(used), int(requested), int(count))
             for kind, used, requested, count in _KIND.findall(printed)}
    return {**parts, "kinds": kinds}


@dataclass(frozen=True)
class ModelCounts:
    """What the 32-bit estimate needs of the model: its ops' builtin names, in graph order,
    its tensors, and the tensors TFLite-Micro plans in the head."""

    ops: tuple
    tensors: int
    planned: int


def model_counts(model_bytes: bytes) -> ModelCounts:
    """The `ModelCounts` of a flatbuffer."""
    model = convert_bytearray_to_object(bytearray(model_bytes))
    ops, tensors, planned = [], 0, 0
    for graph in model.subgraphs:
        for op in graph.operators or []:
            code = model.operatorCodes[op.opcodeIndex]
            ops.append(OP_NAMES.get(get_builtin_code_from_operator_code(code), "CUSTOM"))
        for tensor in graph.tensors:
            data = model.buffers[tensor.buffer].data if tensor.buffer < len(model.buffers) else None
            tensors += 1
            planned += int((data is None or len(data) == 0) and not tensor.isVariable)
    return ModelCounts(tuple(ops), tensors, planned)


def arena_on_32_bit(printed: str, counts: ModelCounts) -> Optional[dict]:
    """The arena a 32-bit build of the same TFLite-Micro needs with its reference kernels,
    split into non-persistent (tensors and scratch) and persistent bytes, from the host
    interpreter's `print_allocations()` text for a model of `counts`; None without a
    recording. "arena_bytes" is what the build's arena_used_bytes() reports, "min_arena_bytes"
    what AllocateTensors() needs: on a small model planning the head takes more."""
    recorded = recorded_allocations(printed)
    if recorded is None:
        return None
    persistent_parts, unrecorded = {}, recorded["tail"]
    for kind, (used, requested, count) in recorded["kinds"].items():
        unrecorded -= used
        if kind in STRUCT_BYTES_32:
            persistent_parts[kind] = STRUCT_BYTES_32[kind] * count
        elif kind == QUANTIZATION:
            persistent_parts[kind] = round(used - QUANTIZATION_SHRINK_PER_ALLOCATION * count)
        elif kind == KERNEL_DATA:
            persistent_parts[kind] = requested - sum(OPDATA_SHRINK.get(op, 0)
                                                     for op in counts.ops)
        else:  # variable buffers, op data: byte arrays, the same size on every word size
            persistent_parts[kind] = used
    persistent_parts["allocator structs"] = max(0, unrecorded - UNRECORDED_SHRINK)
    persistent = sum(persistent_parts.values())
    # The interpreter's input and output tensors and their pointer arrays come after the
    # plan; planning itself holds an AllocationInfo per tensor and the planner's state per
    # planned buffer in the head, with room for the kernels' scratch requests.
    after_planning = sum(persistent_parts.get(kind, 0) for kind in (
        "Persistent TfLiteTensor data", QUANTIZATION)) + 2 * ALIGNMENT
    planning = ((counts.tensors + PLANNING_SPARE) * ALLOCATION_INFO_BYTES_32
                + (counts.planned + PLANNING_SPARE) * PLANNER_BYTES_PER_BUFFER)
    used = recorded["head"] + persistent
    return {"arena_bytes": used,
            "min_arena_bytes": max(used, persistent - after_planning + planning),
            "non_persistent_bytes": recorded["head"], "persistent_bytes": persistent,
            "planning_bytes": planning,
            "persistent_parts": persistent_parts, "host_arena_bytes": recorded["total"]}
