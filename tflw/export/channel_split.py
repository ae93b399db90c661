"""Channel split: a convolution and the depthwise convolution after it, run in channel
groups joined by CONCATENATION, so the wide tensor between them never exists whole.

A depthwise convolution treats each channel alone, and a convolution's output channels
are independent, so group k of the pair (the convolution's filters k, the depthwise
filters k, each with its own per-channel scales and biases) computes exactly the
channels k of the pair's output; CONCATENATION of int8 tensors with one scale and zero
point copies them. The result is bit-identical at no MAC cost; what it buys is arena:
only one group of the intermediate tensor is alive at a time (the Pex / fused depthwise
tiling idea on stock TFLite-Micro kernels).

```python
pairs = split_candidates(model_bytes)          # [(conv op index, channels), ...]
model_bytes = channel_split(model_bytes, pairs[0][0], groups=4)
```
"""

import copy

import numpy as np
from tflite_micro.tensorflow.lite.micro.compression import model_editor
from tflite_micro.python.tflite_micro.runtime import schema_fb

from tflw.export.flatbuffer_edit import edited

_OPS = schema_fb.BuiltinOperator


def _constant(tensor) -> bool:
    return tensor is not None and tensor.buffer is not None and len(tensor.buffer.data) > 0


def _pairs(graph) -> list:
    """(conv operator, depthwise operator) pairs: the conv's output read by the depthwise
    op alone, right after it, per-channel weights on both, depth multiplier 1."""
    pairs = []
    for first, second in zip(graph.operators, graph.operators[1:]):
        if first.opcode != _OPS.CONV_2D or second.opcode != _OPS.DEPTHWISE_CONV_2D:
            continue
        middle = first.outputs[0]
        readers = [op for op in graph.operators if any(t is middle for t in op.inputs)]
        options = second._fb.builtinOptions
        if (readers != [second] or second.inputs[0] is not middle
                or any(t is middle for t in graph.outputs)
                or getattr(options, "depthMultiplier", 1) not in (0, 1)
                or len(first.inputs) < 3 or len(second.inputs) < 3
                or not all(_constant(t) for t in (*first.inputs[1:3], *second.inputs[1:3]))):
            continue  # a DECODE output is a weight tensor without data: not sliced here
        pairs.append((first, second))
    return pairs


def split_candidates(model_bytes: bytes) -> list:
    """`[(conv operator index, channels)]` of every pair `channel_split` can split."""
    graph = model_editor.read(model_bytes).subgraphs[0]
    return [(graph.operators.index(first), int(first.outputs[0].shape[-1]))
            for first, _ in _pairs(graph)]


def _slice_tensor(tensor, axis: int, start: int, stop: int):
    """A copy of a constant (or, with no buffer, an activation) tensor holding channels
    [start, stop) along `axis`, per-channel quantization sliced the same way."""
    piece = model_editor.Tensor(_fb=copy.deepcopy(tensor._fb))
    shape = list(tensor.shape)
    shape[axis] = stop - start
    piece.shape = shape
    if tensor.buffer is not None and len(tensor.buffer.data):
        values = np.frombuffer(tensor.buffer.data, _numpy_type(tensor)).reshape(tensor.shape)
        piece.buffer = model_editor.Buffer(
            data=np.ascontiguousarray(np.take(values, range(start, stop), axis=axis)).tobytes())
    quantization = tensor.quantization
    if quantization is not None and not isinstance(quantization.scales, (int, float)) \
            and len(quantization.scales) > 1:
        zeros = quantization.zero_points
        piece.quantization = model_editor.Quantization(
            scales=list(quantization.scales[start:stop]),
            zero_points=list(zeros[start:stop]) if len(zeros) > 1 else list(zeros),
            axis=quantization.axis)
    else:
        piece.quantization = quantization
    return piece


def _numpy_type(tensor):
    return {schema_fb.TensorType.INT8: np.int8, schema_fb.TensorType.INT32: np.int32,
            schema_fb.TensorType.INT16: np.int16,
            schema_fb.TensorType.INT64: np.int64}[tensor.dtype]


def channel_split(model_bytes: bytes, conv_index: int, groups: int) -> bytes:
    """The model with the pair starting at operator `conv_index` run in `groups` channel
    groups (ValueError if there is no such pair or its channels do not divide)."""

    def split(model) -> bool:
        graph = model.subgraphs[0]
        pair = [p for p in _pairs(graph) if graph.operators.index(p[0]) == conv_index]
        if not pair:
            raise ValueError(f"operator {conv_index} is not a convolution feeding a "
                             "depthwise convolution alone")
        conv, depthwise = pair[0]
        channels = int(conv.outputs[0].shape[-1])
        if groups < 2 or channels % groups:
            raise ValueError(f"{channels} channels do not split into {groups} groups")
        step = channels // groups
        result = depthwise.outputs[0]
        operators, pieces = [], []
        for start in range(0, channels, step):
            stop = start + step
            middle = _slice_tensor(conv.outputs[0], 3, start, stop)
            piece = _slice_tensor(result, 3, start, stop)
            for op, source, output, weight_axis in ((conv, conv.inputs[0], middle, 0),
                                                    (depthwise, middle, piece, 3)):
                operators.append(model_editor.Operator(
                    opcode=op.opcode, _fb=copy.deepcopy(op._fb),
                    inputs=[source, _slice_tensor(op.inputs[1], weight_axis, start, stop),
                            _slice_tensor(op.inputs[2], 0, start, stop)],
                    outputs=[output]))
            pieces.append(piece)
        concat = model_editor.Operator(opcode=_OPS.CONCATENATION, inputs=pieces,
                                       outputs=[result])
        concat._fb.builtinOptionsType = schema_fb.BuiltinOptions.ConcatenationOptions
        concat._fb.builtinOptions = schema_fb.ConcatenationOptionsT()
        concat._fb.builtinOptions.axis = 3
        at = graph.operators.index(conv)
        graph.operators[at:at + 2] = operators + [concat]
        replaced = [conv.outputs[0], *conv.inputs[1:], *depthwise.inputs[1:]]
        graph.tensors = [t for t in graph.tensors if all(t is not r for r in replaced)]
        model_editor.prune_buffers(model)  # the replaced weights' data
        return True

    return edited(model_bytes, split)
