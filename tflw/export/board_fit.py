"""Does a model fit a board? If not, by how much, and which layers to shrink.

```python
check_fits(boards.get("nano33ble"), flatbuffer_bytes, arena_bytes, info.operators)
```
"""

from typing import Sequence

from tflw.boards import Board
from tflw.errors import ModelTooLargeError


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
