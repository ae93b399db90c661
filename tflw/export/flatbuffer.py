"""What a `.tflite` flatbuffer holds: its ops and versions, I/O quantization, tensor types.

The one source of truth for these facts: the resolver, the report and the sketch all read
them from here, never from the Keras model.

```python
info = read_flatbuffer(open("model.tflite", "rb").read())
print(info.ops, info.inputs[0].scale, info.inputs[0].zero_point)
```
"""

from dataclasses import dataclass
from typing import Optional

import numpy as np
from tflite_micro.python.tflite_micro.runtime import (
    convert_bytearray_to_object,
    get_builtin_code_from_operator_code,
    schema_fb,
)

from tflw.errors import ConversionError

OP_NAMES = {v: k for k, v in vars(schema_fb.BuiltinOperator).items() if not k.startswith("_")}
_TYPE_NAMES = {v: k for k, v in vars(schema_fb.TensorType).items() if not k.startswith("_")}
_NUMPY_TYPES = {"INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "UINT8": np.uint8,
                "FLOAT32": np.float32, "BOOL": np.bool_, "FLOAT16": np.float16,
                "INT64": np.int64, "FLOAT64": np.float64}


@dataclass(frozen=True)
class TensorInfo:
    """One model input or output tensor, as the flatbuffer declares it."""

    name: str
    shape: tuple
    dtype: str
    scale: Optional[float]
    zero_point: Optional[int]

    @property
    def numpy_dtype(self):
        return _NUMPY_TYPES[self.dtype]

    def quantize(self, values: np.ndarray) -> np.ndarray:
        """Real values -> this tensor's integers, rounding half up like the fake-quant ops
        (the generated sketch uses the same formula)."""
        limits = np.iinfo(self.numpy_dtype)
        scaled = np.floor(np.asarray(values, np.float64) / self.scale + 0.5) + self.zero_point
        return np.clip(scaled, limits.min, limits.max).astype(self.numpy_dtype)

    def dequantize(self, values: np.ndarray) -> np.ndarray:
        return ((np.asarray(values, np.float64) - self.zero_point) * self.scale).astype(np.float32)


@dataclass(frozen=True)
class OpInfo:
    """An operator kind used by the model: builtin name (or custom code) and version."""

    name: str
    version: int
    custom: bool = False


@dataclass(frozen=True)
class OperatorCost:
    """One operator of the graph: its multiply-accumulates, constants and output.

    Attributes:
        index: position in the graph's execution order.
        name: builtin op name.
        output: name of its output tensor (the converter names it after the Keras layer).
        layer: the Keras layer scope read from the weight (else output) tensor's name; the
            converter's name scopes add suffixes (layer "conv2d" shows as "conv2d_1").
        output_shape: shape of that tensor, and `output_bytes` its size in the arena.
        macs: multiply-accumulates per inference (CONV_2D, DEPTHWISE_CONV_2D,
            FULLY_CONNECTED; 0 for the others).
        weights: number of int8 weights, and `zero_weights` how many of them are 0.
        parameters: elements of all its constant inputs (weights and int32 bias), and
            `parameter_bytes` the flash they take.
        input_bytes: the bytes of its activation inputs (what it reads from the arena).
    """

    index: int
    name: str
    output: str
    macs: int
    weights: int
    zero_weights: int
    output_shape: tuple = ()
    output_bytes: int = 0
    parameters: int = 0
    parameter_bytes: int = 0
    layer: str = ""
    weight_tensor: str = ""  # name of the int8 weight tensor, "" for ops without one
    input_bytes: int = 0

    @property
    def memory_access_bytes(self) -> int:
        """Bytes the op reads and writes once each: its activation inputs, its constants
        and its output. For a 1x1 convolution, ShuffleNet V2's memory access cost
        h*w*(c_in + c_out) + c_in*c_out (Ma et al. 2018), plus its int32 bias."""
        return self.input_bytes + self.parameter_bytes + self.output_bytes


@dataclass(frozen=True)
class FlatbufferInfo:
    ops: tuple
    inputs: tuple
    outputs: tuple
    float_tensors: tuple
    parameter_count: int
    operators: tuple = ()
    degenerate_tensors: tuple = ()  # quantized tensors whose scale is 0 or not finite
    softmax_inputs: tuple = ()  # (input tensor name, beta * input scale) of each int8 SOFTMAX

    @property
    def macs(self) -> int:
        return sum(op.macs for op in self.operators)


def _is_quantized(tensor) -> bool:
    quant = tensor.quantization
    return quant is not None and quant.scale is not None and len(quant.scale) > 0


def _shape(tensor) -> tuple:
    """The tensor's shape; a rebuilt flatbuffer (`flatbuffer_edit`) may omit a scalar's."""
    return () if tensor.shape is None else tuple(int(d) for d in tensor.shape)


def _name(tensor) -> str:
    """The tensor's name; "" when export stripped it (`strip_names`)."""
    if tensor.name is None:
        return ""
    return tensor.name.decode() if isinstance(tensor.name, bytes) else str(tensor.name)


def _tensor_info(graph, index: int) -> TensorInfo:
    tensor = graph.tensors[index]
    quant = tensor.quantization
    has_quant = _is_quantized(tensor)
    return TensorInfo(
        name=_name(tensor),
        shape=_shape(tensor),
        dtype=_TYPE_NAMES[tensor.type],
        scale=float(quant.scale[0]) if has_quant else None,
        zero_point=int(quant.zeroPoint[0]) if has_quant else None,
    )


def _macs(name: str, weight_shape: tuple, output_shape: tuple) -> int:
    """MACs of one op from its int8 weight and output shapes (TFLite layouts)."""
    if name == "CONV_2D":  # weights (out, kh, kw, in), output (1, oh, ow, out)
        return int(np.prod(output_shape) * np.prod(weight_shape[1:]))
    if name == "DEPTHWISE_CONV_2D":  # weights (1, kh, kw, channels)
        return int(np.prod(output_shape) * weight_shape[1] * weight_shape[2])
    if name == "FULLY_CONNECTED":  # weights (out, in)
        return int(np.prod(output_shape) * weight_shape[1])
    return 0


def constant_values(model, tensor) -> Optional[np.ndarray]:
    """The flat values of a constant tensor in `model` (as parsed by
    `convert_bytearray_to_object`), None for an activation."""
    data = model.buffers[tensor.buffer].data
    if data is None or not len(data):
        return None
    return np.frombuffer(bytes(np.asarray(data, np.uint8)), _NUMPY_TYPES.get(
        _TYPE_NAMES[tensor.type], np.uint8))


def _layer_scope(tensor_name: str) -> str:
    """'model_1/re_lu_1/Relu;model_1/conv2d_1/convolution' -> 'conv2d_1': the scope of the
    kernel-bearing part of a fused op's name, else of its first part."""
    paths = [segment.split("/") for segment in tensor_name.split(";")]
    for parts in paths:
        if len(parts) >= 2 and parts[-1].startswith(("convolution", "depthwise", "MatMul")):
            return parts[-2]
    return paths[0][-2] if len(paths[0]) >= 2 else paths[0][0]


def tensor_bytes(tensor) -> int:
    """The bytes of a flatbuffer tensor's (`TensorT`) values."""
    return int(np.prod(_shape(tensor))) * np.dtype(_NUMPY_TYPES[_TYPE_NAMES[tensor.type]]).itemsize


def _operator_cost(model, graph, index: int, op, name: str) -> OperatorCost:
    output = graph.tensors[op.outputs[0]]
    output_shape = _shape(output)
    weights = zeros = macs = parameters = parameter_bytes = input_bytes = 0
    layer, weight_tensor = _layer_scope(_name(output)), ""
    for position, tensor_index in enumerate(op.inputs):
        tensor = graph.tensors[tensor_index] if tensor_index >= 0 else None
        values = None if tensor is None else constant_values(model, tensor)
        if values is None and tensor is not None:
            input_bytes += tensor_bytes(tensor)
        if values is None or not _is_quantized(tensor):
            continue  # activations, and shape/axis constants (they carry no scale)
        parameters += int(values.size)
        parameter_bytes += int(values.nbytes)
        if position == 1 and values.dtype == np.int8:
            weights, zeros = int(values.size), int(np.sum(values == 0))
            layer, weight_tensor = _layer_scope(_name(tensor)), _name(tensor)
            macs = _macs(name, _shape(tensor), output_shape)
    return OperatorCost(index, name, _name(output), macs, weights, zeros, output_shape,
                        tensor_bytes(output), parameters, parameter_bytes,
                        layer or f"op {index}", weight_tensor,  # "": names stripped
                        input_bytes)


def read_flatbuffer(model_bytes: bytes) -> FlatbufferInfo:
    """Parse `model_bytes` (a TFLite flatbuffer).

    Only operators that the graph actually uses are listed: the converter can leave unused
    entries (e.g. QUANTIZE) in the operator-code table, and a resolver needs none of them.
    """
    try:
        model = convert_bytearray_to_object(bytearray(model_bytes))
    except Exception as error:  # the flatbuffer library raises bare struct/index errors
        raise ConversionError(f"not a TFLite flatbuffer ({error}); export a .tflite file") from error
    used: dict = {}
    float_tensors = []
    parameters = 0
    costs = []
    degenerate = []
    softmax = []
    for graph_index, graph in enumerate(model.subgraphs):
        for index, op in enumerate(graph.operators or []):
            code = model.operatorCodes[op.opcodeIndex]
            builtin = get_builtin_code_from_operator_code(code)
            if builtin == schema_fb.BuiltinOperator.CUSTOM:
                name = code.customCode.decode()
                used[name] = OpInfo(name, int(code.version), custom=True)
            else:
                name = OP_NAMES[builtin]
                used[name] = OpInfo(name, max(int(code.version), used.get(name, OpInfo(name, 0)).version))
            if graph_index == 0:
                costs.append(_operator_cost(model, graph, index, op, name))
            if name == "SOFTMAX" and _is_quantized(graph.tensors[op.inputs[0]]):
                source = graph.tensors[op.inputs[0]]
                softmax.append((_name(source),
                                float(op.builtinOptions.beta) * float(source.quantization.scale[0])))
        for tensor in graph.tensors:
            buffer = model.buffers[tensor.buffer]
            is_constant = buffer is not None and buffer.data is not None and len(buffer.data) > 0
            if _TYPE_NAMES[tensor.type] in ("FLOAT32", "FLOAT16"):
                float_tensors.append(_name(tensor))
            if _is_quantized(tensor):
                scales = np.asarray(tensor.quantization.scale, np.float64)
                if not np.all(np.isfinite(scales)) or np.any(scales <= 0):
                    degenerate.append(_name(tensor))
            if is_constant and _TYPE_NAMES[tensor.type] == "INT8":
                parameters += int(np.prod(_shape(tensor)))
            elif is_constant and _TYPE_NAMES[tensor.type] == "INT32" and _is_quantized(tensor):
                parameters += int(np.prod(_shape(tensor)))  # a bias; shape constants have no scale
    main = model.subgraphs[0]
    return FlatbufferInfo(
        ops=tuple(sorted(used.values(), key=lambda op: op.name)),
        inputs=tuple(_tensor_info(main, i) for i in main.inputs),
        outputs=tuple(_tensor_info(main, i) for i in main.outputs),
        float_tensors=tuple(float_tensors),
        parameter_count=parameters,
        operators=tuple(costs),
        degenerate_tensors=tuple(degenerate),
        softmax_inputs=tuple(softmax),
    )
