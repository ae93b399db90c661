"""What CMSIS-NN's kernels add to TFLite-Micro's arena over the reference kernels, per op.

The host interpreter runs TFLite-Micro's reference kernels; a Cortex-M build with CMSIS-NN
runs ARM's optimized ones, which ask for scratch buffers (im2col and friends, planned in the
arena's head while their op runs) and keep a few more bytes of per-op state (a larger OpData
struct in the persistent tail). Both are read from the sources of TFLite-Micro's
`kernels/cmsis_nn/*.cc` and CMSIS-NN's `*_get_buffer_size*` functions for a Cortex-M with
the DSP extension (M4, M7, M33: the boards of `tflw.boards`; a Cortex-M0+ asks for no more).

```python
for op in cmsis_nn_additions(model_bytes):
    print(op.op, op.layer, op.scratch_bytes, op.persistent_bytes)
print(cmsis_nn_margin(model_bytes)["margin_bytes"])
```
"""

from dataclasses import dataclass

from tflite_micro.python.tflite_micro.runtime import (
    convert_bytearray_to_object,
    get_builtin_code_from_operator_code,
    schema_fb,
)

from tflw.export.flatbuffer import OP_NAMES
from tflw.export.memory_plan import (ActivationBuffer, activation_buffers, aligned,
                                     greedy_head, head_with_scratch, planned_offsets)

_INT8, _INT16 = schema_fb.TensorType.INT8, schema_fb.TensorType.INT16
# Bytes each CMSIS-NN kernel's OpData holds beyond the reference kernel's on a 32-bit MCU
# (an int buffer index; FULLY_CONNECTED also a pointer and four ints), which the persistent
# allocator rounds up to 16: at most one or two more alignment units per op.
_OPDATA_EXTRA = {"CONV_2D": 4, "DEPTHWISE_CONV_2D": 4, "AVERAGE_POOL_2D": 4,
                 "MAX_POOL_2D": 4, "FULLY_CONNECTED": 24, "BATCH_MATMUL": 20}
# Each scratch buffer also gets a 4-byte handle in the persistent tail.
_SCRATCH_HANDLE = 4


@dataclass(frozen=True)
class CmsisNnAddition:
    """What one op's CMSIS-NN kernel adds to the arena.

    Attributes:
        index: the op's position in the graph.
        op: its builtin name.
        layer: the output tensor's name (the Keras layer's scope), "" if stripped.
        scratch_bytes: the scratch buffer it asks for while it runs (0: none).
        persistent_bytes: the most its larger per-op state can add to the tail.
    """

    index: int
    op: str
    layer: str
    scratch_bytes: int
    persistent_bytes: int


def _padding(in_size: int, filter_size: int, out_size: int, stride: int,
             dilation: int) -> int:
    """TFLite-Micro's ComputePaddingHeightWidth for one axis."""
    effective = (filter_size - 1) * dilation + 1
    return max(((out_size - 1) * stride + effective - in_size) // 2, 0)


def _conv_scratch(options, input_shape, filter_shape, output_shape, dtype) -> int:
    """arm_convolve_wrapper_s8/s16_get_buffer_size (DSP) for a CONV_2D."""
    _, in_h, in_w, in_c = input_shape
    _, k_h, k_w, _ = filter_shape
    columns = k_h * k_w * in_c
    if dtype == _INT16:
        return 2 * columns * 2
    pad_h = _padding(in_h, k_h, output_shape[1], options.strideH, options.dilationHFactor)
    pad_w = _padding(in_w, k_w, output_shape[2], options.strideW, options.dilationWFactor)
    dilated = options.dilationHFactor != 1 or options.dilationWFactor != 1
    if (k_h, k_w, pad_h, pad_w) == (1, 1, 0, 0) and not dilated:
        return 0  # arm_convolve_1x1_s8(_fast): no scratch built with GCC
    return 2 * (-(-columns // 4) * 4) * 2  # im2col: two columns of int16, 4-aligned


def _depthwise_scratch(options, input_shape, filter_shape, output_shape, dtype) -> int:
    """arm_depthwise_conv_wrapper_s8_get_buffer_size (DSP) for a DEPTHWISE_CONV_2D."""
    _, in_h, in_w, in_c = input_shape
    _, k_h, k_w, _ = filter_shape
    dilated = options.dilationHFactor != 1 or options.dilationWFactor != 1
    if dtype != _INT8 or in_c != output_shape[3] or dilated:
        return 0
    pad_h = _padding(in_h, k_h, output_shape[1], options.strideH, 1)
    pad_w = _padding(in_w, k_w, output_shape[2], options.strideW, 1)
    if (k_h, k_w) == (3, 3) and pad_h <= 1 and pad_w <= 1:
        return 0  # arm_depthwise_conv_3x3_s8
    return in_c * k_h * k_w * 2


def _fully_connected_scratch(input_shape, output_shape, dtype, per_channel: bool) -> int:
    """TFLite-Micro's CMSIS-NN FULLY_CONNECTED Prepare: per-channel arrays faked for a
    per-tensor layer whose output has more than two dimensions, else nothing (DSP)."""
    if dtype == _INT8 and len(output_shape) > 2 and input_shape[-1] % 4 == 0 and not per_channel:
        return output_shape[-1] * 4 * 2
    return 0


def _scratch(name: str, op, tensors) -> int:
    """The scratch buffer `op`'s CMSIS-NN kernel requests, in bytes."""
    source = tensors[op.inputs[0]]
    input_shape = tuple(int(d) for d in source.shape)
    output_shape = tuple(int(d) for d in tensors[op.outputs[0]].shape)
    options = op.builtinOptions
    if name == "CONV_2D":
        weights = tuple(int(d) for d in tensors[op.inputs[1]].shape)
        return _conv_scratch(options, input_shape, weights, output_shape, source.type)
    if name == "DEPTHWISE_CONV_2D":
        weights = tuple(int(d) for d in tensors[op.inputs[1]].shape)
        return _depthwise_scratch(options, input_shape, weights, output_shape, source.type)
    if name == "FULLY_CONNECTED":
        scales = tensors[op.inputs[1]].quantization.scale
        return _fully_connected_scratch(input_shape, output_shape, source.type,
                                        scales is not None and len(scales) > 1)
    if name == "AVERAGE_POOL_2D" and source.type in (_INT8, _INT16):
        return output_shape[3] * 4
    return 0


def cmsis_nn_additions(model_bytes: bytes) -> list:
    """One `CmsisNnAddition` per op of the main graph whose CMSIS-NN kernel needs more arena
    than the reference kernel, in graph order."""
    model = convert_bytearray_to_object(bytearray(model_bytes))
    graph = model.subgraphs[0]
    additions = []
    for index, op in enumerate(graph.operators or []):
        code = model.operatorCodes[op.opcodeIndex]
        name = OP_NAMES.get(get_builtin_code_from_operator_code(code), "CUSTOM")
        scratch = aligned(_scratch(name, op, graph.tensors))
        extra = _OPDATA_EXTRA.get(name, 0)
        persistent = aligned(extra) + (aligned(_SCRATCH_HANDLE) if scratch else 0)
        if scratch or persistent:
            output = graph.tensors[op.outputs[0]].name
            layer = output.decode() if isinstance(output, bytes) else (output or "")
            additions.append(CmsisNnAddition(index, name, layer, scratch, persistent))
    return additions


def cmsis_nn_margin(model_bytes: bytes) -> dict:
    """What to add to the reference kernels' arena for CMSIS-NN's: how much the scratch
    buffers grow the head when TFLite-Micro plans them beside the tensors (each alive only
    while its op runs, so most fit in gaps), and every op's larger persistent state.

    Returns {"margin_bytes", "scratch_growth_bytes", "persistent_bytes", "ops": [one dict
    per `CmsisNnAddition`]}.
    """
    additions = cmsis_nn_additions(model_bytes)
    scratch = [ActivationBuffer(-1 - a.index, a.scratch_bytes, a.index + 1, a.index + 1)
               for a in additions if a.scratch_bytes]
    try:
        offsets = planned_offsets(model_bytes)
        tensors = activation_buffers(model_bytes, alias_reshapes=offsets is not None)
    except ValueError:  # several subgraphs: no plan to fit the scratch into
        growth = max((b.bytes for b in scratch), default=0)
    else:
        base = (greedy_head(tensors) if offsets is None
                else head_with_scratch(tensors, [], offsets))
        growth = max(0, head_with_scratch(tensors, scratch, offsets) - base)
    persistent = sum(a.persistent_bytes for a in additions)
    return {"margin_bytes": growth + persistent, "scratch_growth_bytes": growth,
            "persistent_bytes": persistent, "ops": [vars(a) for a in additions]}
