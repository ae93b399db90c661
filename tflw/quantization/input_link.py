"""Which fake-quant layer holds the int8 scale of a layer's input.

Reproducing TFLite-Micro's integer rescaling needs the input's scale, which lives in the
producer's quantizer. While a functional model is built (and rebuilt by `.keras`
loading), each quantized layer is called on a symbolic tensor; following that tensor's
history back through layers that keep the scale (pooling max, reshape, dropout, padding)
finds the quantizer. The link is a plain reference, not a tracked sublayer, so saving
stores each variable once.
"""

from typing import Optional

import keras

from tflw.quantization.fake_quant import FakeQuant
from tflw.quantization.layer_kinds import keeps_input_scale


class _Link:
    """An untracked reference (Keras tracks layers, lists and dicts, not plain objects)."""

    def __init__(self, quantizers: list):
        self.quantizers = quantizers


class LinksInputQuantizer:
    """Mixin for a layer that needs its inputs' int8 scales (put it before keras.layers.Layer)."""

    def __call__(self, inputs, *args, **kwargs):
        tensors = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        if all(isinstance(t, keras.KerasTensor) for t in tensors):
            self._input_link = _Link([input_quantizer(t) for t in tensors])
        return super().__call__(inputs, *args, **kwargs)

    def linked_input_quantizers(self) -> list:
        """The FakeQuant of each input (None where none was found; [] before a symbolic call)."""
        link = getattr(self, "_input_link", None)
        return [] if link is None else link.quantizers

    def linked_input_quantizer(self) -> Optional[FakeQuant]:
        """The FakeQuant that quantizes this layer's (first) input, or None."""
        return next(iter(self.linked_input_quantizers()), None)

    def input_scale(self):
        """The input's int8 scale, or None when no quantizer was found for it."""
        quantizer = self.linked_input_quantizer()
        return None if quantizer is None else quantizer.scale()


def _source(tensor):
    """The layer that made `tensor`, looking through layers that keep their input's scale."""
    while isinstance(tensor, keras.KerasTensor):
        layer, node_index, _ = tensor._keras_history
        if not (keeps_input_scale(layer) or getattr(layer, "keeps_input_scale", False)):
            return layer
        tensor = layer._inbound_nodes[node_index].input_tensors[0]
    return None


def input_quantizer(tensor) -> Optional[FakeQuant]:
    """The FakeQuant whose output `tensor` is (through same-scale layers), or None."""
    layer = _source(tensor)
    if isinstance(layer, FakeQuant):
        return layer
    return getattr(layer, "output_quant", None)


def unquantized_producer(tensor):
    """The tflw linear layer whose unquantized output `tensor` is (a consumer such as a
    Concatenate quantizes it), or None."""
    layer = _source(tensor)
    if hasattr(layer, "requantized") and getattr(layer, "output_quant", 1) is None:
        return layer
    return None
