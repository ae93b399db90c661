"""Export's arena step: an offline memory plan and channel splits of the peak, each kept
only where TFLite-Micro measures a smaller arena with outputs identical bit for bit.

```python
model_bytes, verification, entry = smaller_arena(model_bytes, inputs, verification)
entry["arena_bytes"], entry["tflm_default_arena_bytes"], entry["lower_bound_head_bytes"]
```
"""

from dataclasses import replace
from typing import Optional

import numpy as np

from tflw.errors import ConversionError
from tflw.export.channel_split import channel_split, split_candidates
from tflw.export.memory_plan import (activation_buffers, alive_bytes, greedy_head,
                                     lower_bound, offline_plan, with_offline_plan)
from tflw.export.verify import VerifyResult, same_outputs, verify

GROUPS = (2, 4, 8)
MAX_SPLITS = 4


def _head(model_bytes: bytes) -> int:
    return offline_plan(activation_buffers(model_bytes)).head_bytes


def _peak_scopes(model_bytes: bytes) -> set:
    """The allocation scopes at which the most bytes are alive."""
    alive = alive_bytes(activation_buffers(model_bytes))
    return {s for s, total in alive.items() if total == max(alive.values())}


def _best_split(model_bytes: bytes, head: int) -> Optional[tuple]:
    """(model bytes, conv operator index, groups) of the split of a pair at the peak whose
    planned head is smallest, if smaller than `head`."""
    peak = _peak_scopes(model_bytes)
    best = None
    for index, channels in split_candidates(model_bytes):
        if not peak & {index + 1, index + 2}:  # the pair runs in scopes index+1, index+2
            continue
        for groups in (g for g in GROUPS if channels % g == 0 and channels > g):
            split = channel_split(model_bytes, index, groups)
            split_head = _head(split)
            if split_head < head and (best is None or split_head < best[0]):
                best = (split_head, split, index, groups)
    return None if best is None else best[1:]


def _checked(planned: bytes, inputs: np.ndarray, verification: VerifyResult, what: str):
    run = verify(planned, inputs)
    if not same_outputs(run, verification):
        raise ConversionError(
            f"the model with {what} gives other outputs in TFLite-Micro than without; export "
            "with minimize_arena=False and report this model to tflw.")
    return run


def smaller_arena(model_bytes: bytes, inputs: np.ndarray,
                  verification: VerifyResult) -> tuple:
    """`(model bytes, their verification, report entry)`: the model with an offline memory
    plan, and then with the pair of operators at the arena's peak split into channel
    groups (`tflw.export.channel_split`) while that lowers it, each step kept only when
    TFLite-Micro allocates it in a smaller arena and gives the same outputs bit for bit.
    A plan is only run when its head is smaller than the one TFLite-Micro's greedy planner
    would make (chains usually reach the bound)."""
    buffers = activation_buffers(model_bytes)
    plan = offline_plan(buffers)
    entry = {"tflm_default_arena_bytes": verification.arena_bytes,
             "lower_bound_head_bytes": lower_bound(buffers),
             "tflm_default_head_bytes_estimate": greedy_head(buffers),
             "offline_plan_head_bytes": plan.head_bytes,
             "offline_plan": False, "channel_splits": [], "arena_bytes": verification.arena_bytes,
             "why": "TFLite-Micro's own plan is as small as the offline one"}
    best, best_run = model_bytes, verification
    if plan.head_bytes < entry["tflm_default_head_bytes_estimate"]:
        planned = with_offline_plan(model_bytes, plan)
        run = _checked(planned, inputs, verification, "an offline memory plan")
        if run.arena_bytes < verification.arena_bytes:
            best, best_run = planned, run
            entry.update(offline_plan=True, plan_order=plan.order,
                         reshapes_in_place=plan.aliases,
                         why="the offline plan's arena, measured, is smaller")
        else:
            entry["why"] = (f"measured {run.arena_bytes:,} B with the offline plan, not less "
                            "than TFLite-Micro's own plan")
    current, head = model_bytes, plan.head_bytes
    for _ in range(MAX_SPLITS):
        found = _best_split(current, head)
        if found is None:
            break
        split, index, groups = found
        split_plan = offline_plan(activation_buffers(split))
        planned = with_offline_plan(split, split_plan)
        run = _checked(planned, inputs, verification, "a channel split")
        if run.arena_bytes >= best_run.arena_bytes:
            break
        current, head, best, best_run = split, split_plan.head_bytes, planned, run
        entry["channel_splits"].append({"operator": index, "groups": groups})
        entry.update(offline_plan=True, offline_plan_head_bytes=head,
                     lower_bound_head_bytes=lower_bound(activation_buffers(split)),
                     why="channel splits at the peak and the offline plan, measured, are smaller")
    if best is model_bytes:
        return model_bytes, verification, entry
    entry.update(arena_bytes=best_run.arena_bytes, flash_added_bytes=len(best) - len(model_bytes))
    return best, replace(verification, arena_bytes=best_run.arena_bytes), entry
