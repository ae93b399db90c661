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

_OP_NAMES = {v: k for k, v in vars(schema_fb.BuiltinOperator).items() if not k.startswith("_")}
_TYPE_NAMES = {v: k for k, v in vars(schema_fb.TensorType).items() if not k.startswith("_")}
_NUMPY_TYPES = {"INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "UINT8": np.uint8,
                "FLOAT32": np.float32}


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
class FlatbufferInfo:
    ops: tuple
    inputs: tuple
    outputs: tuple
    float_tensors: tuple
    parameter_count: int


def _is_quantized(tensor) -> bool:
    quant = tensor.quantization
    return quant is not None and quant.scale is not None and len(quant.scale) > 0


def _name(tensor) -> str:
    return tensor.name.decode() if isinstance(tensor.name, bytes) else str(tensor.name)


def _tensor_info(graph, index: int) -> TensorInfo:
    tensor = graph.tensors[index]
    quant = tensor.quantization
    has_quant = _is_quantized(tensor)
    return TensorInfo(
        name=_name(tensor),
        shape=tuple(int(d) for d in tensor.shape),
        dtype=_TYPE_NAMES[tensor.type],
        scale=float(quant.scale[0]) if has_quant else None,
        zero_point=int(quant.zeroPoint[0]) if has_quant else None,
    )


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
    for graph in model.subgraphs:
        for op in graph.operators or []:
            code = model.operatorCodes[op.opcodeIndex]
            builtin = get_builtin_code_from_operator_code(code)
            if builtin == schema_fb.BuiltinOperator.CUSTOM:
                name = code.customCode.decode()
                used[name] = OpInfo(name, int(code.version), custom=True)
            else:
                name = _OP_NAMES[builtin]
                used[name] = OpInfo(name, max(int(code.version), used.get(name, OpInfo(name, 0)).version))
        for tensor in graph.tensors:
            buffer = model.buffers[tensor.buffer]
            is_constant = buffer is not None and buffer.data is not None and len(buffer.data) > 0
            if _TYPE_NAMES[tensor.type] in ("FLOAT32", "FLOAT16"):
                float_tensors.append(_name(tensor))
            if is_constant and _TYPE_NAMES[tensor.type] == "INT8":
                parameters += int(np.prod(tensor.shape))
            elif is_constant and _TYPE_NAMES[tensor.type] == "INT32" and _is_quantized(tensor):
                parameters += int(np.prod(tensor.shape))  # a bias; shape constants have no scale
    main = model.subgraphs[0]
    return FlatbufferInfo(
        ops=tuple(sorted(used.values(), key=lambda op: op.name)),
        inputs=tuple(_tensor_info(main, i) for i in main.inputs),
        outputs=tuple(_tensor_info(main, i) for i in main.outputs),
        float_tensors=tuple(float_tensors),
        parameter_count=parameters,
    )
