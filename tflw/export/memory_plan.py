"""An offline memory plan for TFLite-Micro: every activation's arena offset, in the model.

TFLite-Micro plans the arena's head at run time with a greedy planner (largest buffer
first, each at the lowest offset free for its lifetime). A model may instead carry its
own plan, the "OfflineMemoryAllocation" metadata (int32 `[version, subgraphs, tensors,
offset per tensor or -1]`), which the interpreter takes as given, unchecked. This module
computes lifetimes exactly as TFLite-Micro's `AllocationInfoBuilder` does, searches
placement orders for a smaller head than the greedy one, lets RESHAPE share its input's
memory (TFLite-Micro skips the copy when the two alias), and checks any plan against the
lifetimes independently of the planner that made it.

```python
buffers = activation_buffers(model_bytes)
plan = offline_plan(buffers)                     # offsets, head bytes
check_plan(buffers, plan.offsets)                # raises if two live tensors overlap
model_bytes = with_offline_plan(model_bytes, plan)
print(plan.head_bytes, lower_bound(buffers))
```
"""

import random
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from tflite_micro.python.tflite_micro.runtime import (
    convert_bytearray_to_object,
    get_builtin_code_from_operator_code,
    schema_fb,
)

from tflw.export.flatbuffer import tensor_bytes
from tflw.export.flatbuffer_edit import edited

METADATA_NAME = "OfflineMemoryAllocation"
ALIGNMENT = 16  # MicroArenaBufferAlignment(): every planned buffer is rounded up to it
_RESHAPE = schema_fb.BuiltinOperator.RESHAPE


@dataclass(frozen=True)
class ActivationBuffer:
    """One tensor the arena's head holds: its index, aligned size and lifetime, in
    TFLite-Micro's allocation scopes (0: the inputs; op i runs in scope i + 1)."""

    tensor: int
    bytes: int
    first: int
    last: int
    alias_of: Optional[int] = None  # a RESHAPE output planned on its input's memory

    def overlaps_in_time(self, other: "ActivationBuffer") -> bool:
        return not (self.last < other.first or other.last < self.first)


@dataclass(frozen=True)
class MemoryPlan:
    """Offsets by tensor index (those not listed are planned at run time) and the head's
    size they need."""

    offsets: dict
    head_bytes: int
    order: str  # which placement order won
    aliases: bool = False  # whether RESHAPE outputs share their inputs' memory


def aligned(size: int) -> int:
    """`size` rounded up to TFLite-Micro's buffer alignment."""
    return -(-size // ALIGNMENT) * ALIGNMENT


def activation_buffers(model_bytes: bytes, alias_reshapes: bool = True) -> list:
    """The head's buffers of the model's only subgraph, lifetimes as TFLite-Micro marks
    them. With `alias_reshapes`, a RESHAPE whose input dies there shares its memory: the
    input's lifetime is extended to the output's and the output is marked `alias_of`."""
    model = convert_bytearray_to_object(bytearray(model_bytes))
    if len(model.subgraphs) != 1:
        raise ValueError(f"an offline plan needs one subgraph; the model has "
                         f"{len(model.subgraphs)}")
    graph = model.subgraphs[0]
    first, last = {}, {}
    for index in graph.inputs:
        first[index], last[index] = 0, 0
    for scope, op in enumerate(graph.operators, start=1):
        for index in op.outputs:
            first.setdefault(index, scope)
            last[index] = scope
        for index in op.inputs:
            if index >= 0:
                last[index] = scope
    end = len(graph.operators)
    for index in graph.outputs:
        first.setdefault(index, end)
        last[index] = end
    sizes = {}
    for index, tensor in enumerate(graph.tensors):
        data = model.buffers[tensor.buffer].data if tensor.buffer < len(model.buffers) else None
        size = tensor_bytes(tensor)
        if (data is None or len(data) == 0) and not tensor.isVariable and size and index in first:
            sizes[index] = aligned(size)
    buffers = {i: ActivationBuffer(i, sizes[i], first[i], last[i]) for i in sizes}
    if alias_reshapes:
        codes = [get_builtin_code_from_operator_code(c) for c in model.operatorCodes]
        for scope, op in enumerate(graph.operators, start=1):
            source, target = op.inputs[0], op.outputs[0]
            if (codes[op.opcodeIndex] == _RESHAPE and source in buffers and target in buffers
                    and buffers[source].last == scope and source not in graph.outputs
                    and buffers[source].alias_of is None
                    and buffers[source].bytes == buffers[target].bytes):
                root = buffers[source]
                buffers[source] = ActivationBuffer(source, root.bytes, root.first,
                                                   buffers[target].last)
                buffers[target] = ActivationBuffer(target, root.bytes, buffers[target].first,
                                                   buffers[target].last, alias_of=source)
    return [buffers[i] for i in sorted(buffers)]


def alive_bytes(buffers: Sequence[ActivationBuffer]) -> dict:
    """{scope: bytes alive in it}, a RESHAPE sharing its input's memory counted once."""
    planned = [b for b in buffers if b.alias_of is None]
    return {s: sum(b.bytes for b in planned if b.first <= s <= b.last)
            for s in range(max((b.last for b in planned), default=-1) + 1)}


def lower_bound(buffers: Sequence[ActivationBuffer]) -> int:
    """The most bytes alive at once: no plan of these lifetimes needs fewer."""
    return max(alive_bytes(buffers).values(), default=0)


def _first_fit(buffers: Sequence[ActivationBuffer], fixed: Optional[dict] = None) -> tuple:
    """Each buffer in turn at the lowest offset free over its lifetime (TFLite-Micro's
    rule), after the `fixed` {buffer: offset} ones; returns (offsets, head bytes)."""
    fixed = fixed or {}
    placed, offsets = list(fixed), {b.tensor: offset for b, offset in fixed.items()}
    for buffer in buffers:
        busy = sorted((offsets[p.tensor], offsets[p.tensor] + p.bytes) for p in placed
                      if p.overlaps_in_time(buffer))
        offset = 0
        for start, stop in busy:
            if start - offset >= buffer.bytes:
                break
            offset = max(offset, stop)
        offsets[buffer.tensor] = offset
        placed.append(buffer)
    return offsets, max((offsets[b.tensor] + b.bytes for b in [*fixed, *buffers]), default=0)


def greedy_head(buffers: Sequence[ActivationBuffer]) -> int:
    """The head TFLite-Micro's own planner makes of these buffers (no aliasing; its
    scratch buffers left out): largest first, ties in tensor order."""
    return _first_fit(sorted((b for b in buffers if b.alias_of is None),
                             key=lambda b: -b.bytes))[1]


def head_with_scratch(buffers: Sequence[ActivationBuffer], scratch: Sequence[ActivationBuffer],
                      offsets: Optional[dict] = None) -> int:
    """The head TFLite-Micro plans when kernels also ask for `scratch` buffers: with the
    tensors, largest first (ties to the tensors), or, where the model carries an offline
    plan (`offsets`), first fit around the tensors it placed."""
    if offsets is None:
        return greedy_head([*buffers, *scratch])
    fixed = {b: offsets[b.tensor] for b in buffers if b.tensor in offsets}
    return _first_fit(sorted(scratch, key=lambda b: -b.bytes), fixed)[1]


def offline_plan(buffers: Sequence[ActivationBuffer], restarts: int = 200,
                 seed: int = 0) -> MemoryPlan:
    """The smallest head found over placement orders: TFLite-Micro's (size, largest
    first), by creation, by lifetime, by size times lifetime, then `restarts` random
    swaps of the best order kept when they do not grow the head. Aliased RESHAPE
    outputs take their input's offset."""
    roots = [b for b in buffers if b.alias_of is None]
    orders = {
        "size": sorted(roots, key=lambda b: -b.bytes),
        "creation": sorted(roots, key=lambda b: (b.first, -b.bytes)),
        "lifetime": sorted(roots, key=lambda b: (-(b.last - b.first), -b.bytes)),
        "area": sorted(roots, key=lambda b: -(b.bytes * (b.last - b.first + 1))),
    }
    name, best = min(((n, o) for n, o in orders.items()), key=lambda item: _first_fit(item[1])[1])
    offsets, head = _first_fit(best)
    bound = lower_bound(buffers)
    generator = random.Random(seed)
    for _ in range(restarts if len(best) > 1 and head > bound else 0):
        trial = list(best)
        i, j = generator.sample(range(len(trial)), 2)
        trial[i], trial[j] = trial[j], trial[i]
        trial_offsets, trial_head = _first_fit(trial)
        if trial_head <= head:
            if trial_head < head:
                name = "search"
            best, offsets, head = trial, trial_offsets, trial_head
            if head == bound:
                break
    for buffer in buffers:
        if buffer.alias_of is not None:
            offsets[buffer.tensor] = offsets[buffer.alias_of]
    return MemoryPlan(offsets, head, name, aliases=len(roots) < len(buffers))


def check_plan(buffers: Sequence[ActivationBuffer], offsets: dict) -> None:
    """Raises ValueError naming two tensors alive at once whose memory overlaps (a RESHAPE
    output sharing its input's memory is allowed: TFLite-Micro then skips the copy)."""
    by_index = {b.tensor: b for b in buffers}
    missing = [b.tensor for b in buffers if b.tensor not in offsets]
    if missing:
        raise ValueError(f"the plan has no offset for tensors {missing}")
    for a_index, a in enumerate(buffers):
        for b in buffers[a_index + 1:]:
            shared = a.alias_of == b.tensor or b.alias_of == a.tensor or (
                a.alias_of is not None and a.alias_of == b.alias_of)
            if shared or not a.overlaps_in_time(b):
                continue
            a_start, b_start = offsets[a.tensor], offsets[b.tensor]
            if a_start < b_start + by_index[b.tensor].bytes and b_start < a_start + a.bytes:
                raise ValueError(
                    f"tensors {a.tensor} and {b.tensor} are alive at once (scopes "
                    f"{a.first}-{a.last} and {b.first}-{b.last}) and overlap in the arena "
                    f"({a_start}+{a.bytes} B, {b_start}+{b.bytes} B)")


def planned_offsets(model_bytes: bytes) -> Optional[dict]:
    """The offsets a model's OfflineMemoryAllocation metadata holds (-1 left out), or
    None without one."""
    model = convert_bytearray_to_object(bytearray(model_bytes))
    for entry in model.metadata or []:
        name = entry.name.decode() if isinstance(entry.name, bytes) else entry.name
        if name == METADATA_NAME:
            values = np.frombuffer(bytes(model.buffers[entry.buffer].data), np.int32)
            return {i: int(v) for i, v in enumerate(values[3:3 + values[2]]) if v >= 0}
    return None


def with_offline_plan(model_bytes: bytes, plan: MemoryPlan) -> bytes:
    """The model with `plan` as its OfflineMemoryAllocation metadata (replacing any), the
    tensors' order unchanged; checked against the rebuilt model's own lifetimes."""
    count = len(convert_bytearray_to_object(bytearray(model_bytes)).subgraphs[0].tensors)
    values = [plan.offsets.get(i, -1) for i in range(count)]
    payload = np.array([0, 1, count, *values], np.int32).tobytes()

    def add(model) -> bool:
        model.metadata[METADATA_NAME] = payload
        return True

    result = edited(model_bytes, add)
    if planned_offsets(result) != {i: v for i, v in enumerate(values) if v >= 0}:
        raise RuntimeError("the rebuilt model's tensors are not in the planned order")
    check_plan(activation_buffers(result, plan.aliases), planned_offsets(result))
    return result
