"""Export's arena step: an offline memory plan, kept where TFLite-Micro measures less.

```python
model_bytes, verification, entry = smaller_arena(model_bytes, inputs, verification)
entry["arena_bytes"], entry["tflm_default_arena_bytes"], entry["lower_bound_head_bytes"]
```
"""

from dataclasses import replace

import numpy as np

from tflw.errors import ConversionError
from tflw.export.memory_plan import (activation_buffers, greedy_head, lower_bound,
                                     offline_plan, with_offline_plan)
from tflw.export.verify import VerifyResult, verify


def smaller_arena(model_bytes: bytes, inputs: np.ndarray,
                  verification: VerifyResult) -> tuple:
    """`(model bytes, their verification, report entry)`: the model with an offline memory
    plan when TFLite-Micro allocates it in a smaller arena and gives the same outputs bit
    for bit, else the model as it was. The plan is only run when its head is smaller than
    the one TFLite-Micro's greedy planner would make (chains usually reach the bound)."""
    buffers = activation_buffers(model_bytes)
    plan = offline_plan(buffers)
    entry = {"tflm_default_arena_bytes": verification.arena_bytes,
             "lower_bound_head_bytes": lower_bound(buffers),
             "tflm_default_head_bytes_estimate": greedy_head(buffers),
             "offline_plan_head_bytes": plan.head_bytes,
             "offline_plan": False, "arena_bytes": verification.arena_bytes}
    if plan.head_bytes >= entry["tflm_default_head_bytes_estimate"]:
        entry["why"] = "TFLite-Micro's own plan is as small as the offline one"
        return model_bytes, verification, entry
    planned = with_offline_plan(model_bytes, plan)
    run = verify(planned, inputs)
    if not all(np.array_equal(a, b) for a, b in zip(run.outputs, verification.outputs)):
        raise ConversionError(
            "the model with an offline memory plan gives other outputs in TFLite-Micro than "
            "without it; export with minimize_arena=False and report this model to tflw.")
    if run.arena_bytes >= verification.arena_bytes:
        entry["why"] = (f"measured {run.arena_bytes:,} B with the offline plan, not less than "
                        f"TFLite-Micro's own plan")
        return model_bytes, verification, entry
    entry.update(offline_plan=True, arena_bytes=run.arena_bytes,
                 flash_added_bytes=len(planned) - len(model_bytes),
                 plan_order=plan.order, reshapes_in_place=plan.aliases,
                 why="the offline plan's arena, measured, is smaller")
    return planned, replace(verification, arena_bytes=run.arena_bytes), entry
