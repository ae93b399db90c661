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
part = arena_on_32_bit(run.recording, [op.name for op in info.operators])  # a TflmRun
part["arena_bytes"], part["non_persistent_bytes"], part["persistent_bytes"]
```
"""

import re
from typing import Optional, Sequence

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


def arena_on_32_bit(printed: str, ops: Sequence[str]) -> Optional[dict]:
    """The arena a 32-bit build of the same TFLite-Micro needs with its reference kernels,
    split into non-persistent (tensors and scratch) and persistent bytes, from the host
    interpreter's `print_allocations()` text for a model running `ops` (one builtin name
    per op of its graph); None without a recording."""
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
            persistent_parts[kind] = requested - sum(OPDATA_SHRINK.get(op, 0) for op in ops)
        else:  # variable buffers, op data: byte arrays, the same size on every word size
            persistent_parts[kind] = used
    persistent_parts["allocator structs"] = max(0, unrecorded - UNRECORDED_SHRINK)
    persistent = sum(persistent_parts.values())
    return {"arena_bytes": recorded["head"] + persistent,
            "non_persistent_bytes": recorded["head"], "persistent_bytes": persistent,
            "persistent_parts": persistent_parts, "host_arena_bytes": recorded["total"]}
