"""Data for a model, checked once before any work: one float32 array per model input.

A model with one input takes an array. A model with several takes a list or tuple with one
array per input, in `model.inputs` order, or a dict by input name, as Keras's `fit` does.
Where tflw takes example inputs, it also takes an iterable of such batches: a generator, a
`tf.data.Dataset`, or a list of batches that are themselves lists or dicts. A list of arrays
is always one array per input, so that a label beside the inputs is refused by name, never
read as more samples or another input.

```python
arrays = model_arrays([accel, audio], "representative_data", model)  # [accel, audio], float32
for batch in data_batches(dataset, "calibration_data", model):       # [array per input]
    model(as_model_input(batch), training=True)
```
"""

import re
from dataclasses import dataclass
from typing import Iterable, Mapping, Optional, Sequence, Union

import numpy as np

from tflw.errors import InputMismatchError, NonFiniteError, UnsupportedModelError


# An array, one array per input (a list, or a dict by input name), or an iterable of those.
ModelData = Union[np.ndarray, Sequence[np.ndarray], Mapping[str, np.ndarray], Iterable]


@dataclass(frozen=True)
class InputSpec:
    """A model input: its name and the shape of one sample (the batch axis aside)."""

    name: str
    shape: tuple


def input_specs(model) -> list:
    """One `InputSpec` per input of a Keras model (`model` itself if it is such a list)."""
    if isinstance(model, (list, tuple)):
        return list(model)
    return [InputSpec(str(t.name), tuple(t.shape)[1:]) for t in model.inputs]


def flatbuffer_specs(info, names: Optional[Sequence[str]] = None) -> list:
    """One `InputSpec` per input of a flatbuffer (`tflw.export.flatbuffer.FlatbufferInfo`),
    named `names` (the Keras model's input names, where known), else as the flatbuffer
    names it ("serving_default_x:0" read as "x"), else by position ("#0")."""
    if names is None or len(names) != len(info.inputs):
        names = [re.sub(r"^serving_default_|:\d+$", "", t.name) or f"#{i}"
                 for i, t in enumerate(info.inputs)]
    return [InputSpec(str(name), tuple(t.shape[1:])) for name, t in zip(names, info.inputs)]


def _is_array(value) -> bool:
    return hasattr(value, "shape") and hasattr(value, "dtype")


def _per_input(data, argument: str, specs: Sequence[InputSpec]) -> list:
    """`data` (one batch, in any of the accepted forms) as a list with one value per input."""
    names = ", ".join(f"'{spec.name}' {spec.shape}" for spec in specs)
    if isinstance(data, dict):
        missing = [spec.name for spec in specs if spec.name not in data]
        extra = sorted(set(map(str, data)) - {spec.name for spec in specs})
        if missing or extra:
            unnamed = all(spec.name.startswith("#") for spec in specs)
            raise InputMismatchError(
                f"{argument} has keys {sorted(map(str, data))}; the model's inputs are "
                f"{names}: " + ("the flatbuffer does not name them: give a list in input "
                                "order, or the Keras model as reference." if unnamed else
                                f"give one array per input name (missing {missing}, unknown "
                                f"{extra})."))
        return [data[spec.name] for spec in specs]
    listed = isinstance(data, (list, tuple)) and (
        len(specs) > 1 or (data and all(_is_array(item) for item in data)))
    values = list(data) if listed else [data]  # one input: nested numbers are one array
    if len(values) != len(specs):
        labels = " (labels do not go here: pass the inputs alone)" if len(values) > len(
            specs) else ""
        raise InputMismatchError(
            f"{argument} gives {len(values)} array(s); the model takes {len(specs)} input(s), "
            f"{names}: give one array per input, in that order, or a dict by input name"
            f"{labels}.")
    return values


def _checked(values: list, argument: str, specs: Sequence[InputSpec]) -> list:
    """Each value as float32 of its input's sample shape, finite, all with one sample count."""
    arrays = []
    for value, spec in zip(values, specs):
        where = f"{argument}" if len(specs) == 1 else f"{argument} for input '{spec.name}'"
        try:
            array = np.asarray(value, dtype=np.float32)
        except (TypeError, ValueError) as error:
            raise InputMismatchError(f"{where} is not numeric ({error}): give an array of "
                                     f"samples of shape {spec.shape}.") from error
        if array.ndim != len(spec.shape) + 1 or tuple(array.shape[1:]) != spec.shape:
            raise InputMismatchError(
                f"{where} has shape {array.shape}; model input '{spec.name}' takes samples of "
                f"shape {spec.shape} (the first axis counts samples).")
        if len(array) == 0:
            raise InputMismatchError(f"{where} is empty: give at least one sample.")
        if not np.isfinite(array).all():
            bad = int(np.argmax(~np.isfinite(array).reshape(len(array), -1).all(axis=1)))
            raise NonFiniteError(f"{where} holds NaN/Inf (first in sample {bad}): clean the data.")
        arrays.append(array)
    counts = {len(array) for array in arrays}
    if len(counts) > 1:
        raise InputMismatchError(
            f"{argument} gives {', '.join(f'{len(a)}' for a in arrays)} samples for inputs "
            f"{', '.join(repr(s.name) for s in specs)}: give each input the same samples.")
    return arrays


def _batches_of(data) -> Optional[list]:
    """The batches `data` holds when it is an iterable of batches, else None."""
    if _is_array(data) or isinstance(data, (dict, str, bytes)):
        return None
    if isinstance(data, (list, tuple)):
        # batches: a list of lists or tuples of arrays, or of dicts; a list of arrays is one
        # array per input, nested numbers one array
        grouped = [isinstance(item, dict) or (isinstance(item, (list, tuple)) and item and all(
            _is_array(part) for part in item)) for item in data]
        return list(data) if data and all(grouped) else None
    return list(data) if hasattr(data, "__iter__") else None


def data_batches(data, argument: str, model) -> list:
    """The batches of `data` (given in any accepted form) for `model` (a Keras model or a
    list of `InputSpec`), each a list with one checked float32 array per input; one batch
    for data that is not an iterable of batches.

    Raises:
        InputMismatchError: wrong count of arrays, shape, dtype, or no sample.
        NonFiniteError: NaN or Inf in the data.
    """
    specs = input_specs(model)
    batches = _batches_of(data)
    if batches is None:
        return [_checked(_per_input(data, argument, specs), argument, specs)]
    if not batches:
        raise InputMismatchError(f"{argument} holds no batch: give at least one sample.")
    return [_checked(_per_input(batch, f"{argument} (batch {i})", specs),
                     f"{argument} (batch {i})", specs) for i, batch in enumerate(batches)]


def model_arrays(data, argument: str, model) -> list:
    """`data` (given in any accepted form) as one checked float32 array per input of
    `model` (a Keras model or a list of `InputSpec`), batches joined."""
    batches = data_batches(data, argument, model)
    return batches[0] if len(batches) == 1 else [np.concatenate(parts) for parts in zip(*batches)]


def one_input_array(data, argument: str, model, what: str) -> np.ndarray:
    """`data` as the checked float32 array of a one-input model; `UnsupportedModelError`
    naming `what` (the feature that needs one input) for a model with several."""
    if len(model.inputs) != 1:
        raise UnsupportedModelError(
            f"{what} takes models with one input; '{model.name}' has {len(model.inputs)} "
            f"({', '.join(str(t.name) for t in model.inputs)}). tflw.export(model, out_dir, "
            "representative_data=[...]) quantizes it with the converter, one array per input.")
    return model_arrays(data, argument, model)[0]


def as_model_input(arrays: Sequence):
    """What a Keras model takes: the array for one input, the list for several."""
    return arrays[0] if len(arrays) == 1 else list(arrays)


def first_samples(arrays: Sequence[np.ndarray], count: int) -> list:
    """The first `count` samples of every input."""
    return [array[:count] for array in arrays]
