"""Does a model fit a board? If not, by how much, and which layers to shrink.

```python
check_weights_fit(boards.get("nano33ble"), model)   # before converting: int8 weights alone
check_fits(boards.get("nano33ble"), flatbuffer_bytes, arena_bytes, info.operators)
```
"""

from typing import Sequence

import numpy as np

from tflw.boards import Board
from tflw.errors import ModelTooLargeError

# Weights stored at least one byte each in an int8 flatbuffer (Keras 3 and tf_keras names).
_WEIGHT_NAMES = ("kernel", "depthwise_kernel", "pointwise_kernel", "embeddings")


def _weight_bytes(model) -> list:
    """(layer path, int8 bytes) of every kernel in `model`, largest first."""
    sizes = []
    for variable in model.weights:
        path = getattr(variable, "path", variable.name).split(":")[0]
        if path.split("/")[-1] in _WEIGHT_NAMES:
            sizes.append((path.rsplit("/", 1)[0], int(np.prod(variable.shape))))
    return sorted(sizes, key=lambda item: -item[1])


def check_weights_fit(board: Board, model) -> None:
    """Raise `ModelTooLargeError` when the int8 kernels alone exceed `board`'s model flash.

    Reads only the parameter count, so an obvious misfit is refused in about a second,
    before quantizing or converting (which takes minutes and gigabytes for such a model).
    """
    sizes = _weight_bytes(model)
    total = sum(size for _, size in sizes)
    if total > board.model_flash_budget:
        largest = ", ".join(f"{path} ({size:,} B)" for path, size in sizes[:3])
        raise ModelTooLargeError(
            f"does not fit {board.name} ({board.key}): its {total:,} weights take at least "
            f"{total:,} B of flash as int8, {total - board.model_flash_budget:,} B more than the "
            f"{board.model_flash_budget:,} B left for the model, before conversion. Largest: "
            f"{largest}. Shrink the model (tflw.fit_board searches bits and channels for a "
            "budget), or pick a board with more flash.")


def _culprits(ops: Sequence, field: str) -> str:
    largest = sorted(ops, key=lambda op: getattr(op, field), reverse=True)[:3]
    return ", ".join(f"{op.layer} ({op.name}, {getattr(op, field):,} B)" for op in largest)


def check_fits(board: Board, flatbuffer_bytes: int, arena_bytes: int, ops: Sequence) -> None:
    """Raise `ModelTooLargeError` unless model and arena fit `board`'s budgets.

    Args:
        board: the target board.
        flatbuffer_bytes: the model's flash size.
        arena_bytes: the measured tensor arena.
        ops: the flatbuffer's `OperatorCost`s, to name the layers that dominate.
    """
    checks = (
        ("flash", "the model takes", flatbuffer_bytes, board.flash_bytes, board.runtime_flash,
         "weights", "parameter_bytes",
         "Prune channels (tflw.prune_model(..., structure='channels')) or narrow those layers."),
        ("RAM", "the tensor arena needs", arena_bytes, board.ram_bytes, board.runtime_ram,
         "activations", "output_bytes",
         "Downsample earlier (strides, pooling) or use fewer channels there."),
    )
    problems = [
        f"{memory}: {what} {used:,} B, {used - (total - reserve):,} B more than the "
        f"{total - reserve:,} B left ({total:,} B - {reserve:,} B for the firmware). "
        f"Largest {kind}: {_culprits(ops, field)}. {advice}"
        for memory, what, used, total, reserve, kind, field, advice in checks
        if used > total - reserve
    ]
    if problems:
        raise ModelTooLargeError(f"does not fit {board.name} ({board.key}):\n  - "
                                 + "\n  - ".join(problems))
