"""LUT compression of low-bit weights: k bits per weight in flash, int8 kernels unchanged.

A weight tensor whose channels each hold at most 2^k distinct int8 values (what
`quantize_model(..., weight_bits=k)` trains) is stored as k-bit indices plus a table per
channel; TFLite-Micro's DECODE op expands it into the arena before the kernel runs.

```python
compressed = lut_compress(model_bytes)     # None when no tensor gains from it
compressed.model_bytes, compressed.tensors
```
"""

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from tflite_micro.python.tflite_micro.runtime import convert_bytearray_to_object
from tflite_micro.tensorflow.lite.micro.compression import compress, spec

from tflw.export.flatbuffer import constant_values
from tflw.export.memory_plan import activation_buffers, aligned, alive_bytes, offline_plan
from tflw.export.zero_points import single_zero_points

# Flash DECODE's code adds to a Cortex-M4 firmware, measured by benchmarks/firmware.py.
DECODE_CODE_BYTES: int = json.loads(
    (Path(__file__).parent / "runtime_flash.json").read_text())["decode_bytes"]


@dataclass(frozen=True)
class LutTensor:
    """One compressed weight tensor."""

    name: str
    bits: int
    axis: Optional[int]  # the quantization axis the tables follow; None = one table
    int8_bytes: int
    lut_bytes: int  # indices plus tables, as laid out by the compressor (estimated)


@dataclass(frozen=True)
class LutModel:
    model_bytes: bytes
    tensors: tuple
    kept_for_arena: tuple = ()  # names of low-bit tensors left int8: decoding raises the peak


def _weight_tensors(model) -> dict:
    """{tensor index: tensor} of the int8 constant weights (second input of an op)."""
    graph = model.subgraphs[0]
    weights = {}
    for op in graph.operators or []:
        if len(op.inputs) < 2 or op.inputs[1] < 0:
            continue
        tensor = graph.tensors[op.inputs[1]]
        values = constant_values(model, tensor)
        if values is not None and values.dtype == np.int8:
            weights[int(op.inputs[1])] = tensor
    return weights


def _plan(model, tensor) -> Optional[LutTensor]:
    values = constant_values(model, tensor).reshape(tuple(tensor.shape))
    quantization = tensor.quantization
    # The tables must follow the tensor's quantization axis: a per-tensor table on a
    # per-channel tensor decodes to wrong values in every TFLite-Micro runtime.
    axis = int(quantization.quantizedDimension) if len(quantization.scale) > 1 else None
    slices = [values] if axis is None else [np.take(values, i, axis=axis)
                                           for i in range(values.shape[axis])]
    distinct = max(len(np.unique(s)) for s in slices)
    bits = max(1, math.ceil(math.log2(distinct)))
    if bits >= 8:
        return None
    lut_bytes = math.ceil(values.size * bits / 8) + len(slices) * 2**bits
    if lut_bytes >= values.size:
        return None
    name = tensor.name.decode() if isinstance(tensor.name, bytes) else str(tensor.name)
    return LutTensor(name, bits, axis, int(values.size), lut_bytes)


def _raising_the_peak(model_bytes: bytes, graph, weights: dict) -> set:
    """Indices of the weights whose decoded copy would not fit beside the activations
    alive when their op runs within the int8 model's planned arena head: DECODE expands
    a tensor into the arena just before its consumer."""
    buffers = activation_buffers(model_bytes)
    head = offline_plan(buffers).head_bytes
    alive = alive_bytes(buffers)
    raising = set()
    for scope, op in enumerate(graph.operators, start=1):
        index = int(op.inputs[1]) if len(op.inputs) > 1 else -1
        if index in weights and alive[scope] + aligned(
                int(np.prod(weights[index].shape))) > head:
            raising.add(index)
    return raising


def lut_compress(model_bytes: bytes, within_arena: bool = True,
                 keep_int8: Sequence[str] = ()) -> Optional[LutModel]:
    """The flatbuffer with every weight tensor of at most 2^k values per channel (k < 8)
    LUT-compressed at k bits, when that makes it smaller; None otherwise. With
    `within_arena`, a tensor whose decoded copy would raise the arena's peak stays int8, as
    do the tensors named in `keep_int8` (all listed in `LutModel.kept_for_arena`)."""
    model = convert_bytearray_to_object(bytearray(model_bytes))
    weights = _weight_tensors(model)
    raising = (_raising_the_peak(model_bytes, model.subgraphs[0], weights) if within_arena
               else set())
    specs, tensors, kept = [], [], []
    for index, tensor in sorted(weights.items()):
        plan = _plan(model, tensor)
        if plan is None:
            continue
        if index in raising or plan.name in keep_int8:
            kept.append(plan.name)
            continue
        mode = spec.PerTensor() if plan.axis is None else spec.PerChannel(axis=plan.axis)
        specs.append(spec.Tensor(subgraph=0, tensor=index, compression=[
            spec.LookUpTableCompression(index_bitwidth=plan.bits, mode=mode)]))
        tensors.append(plan)
    if not specs:
        return None if not kept else LutModel(model_bytes, (), tuple(kept))
    # TFLite-Micro only, as DECODE is: one zero point per tensor (tflw.export.zero_points)
    compressed = single_zero_points(bytes(compress(model_bytes, specs)))
    if len(compressed) >= len(model_bytes):
        return None
    return LutModel(compressed, tuple(tensors), tuple(kept))
