"""PNG plots for reports: per-layer costs, and accuracy against flash over runs.

```python
plot_layers(tflw.analyze(model), "build/layers.png")
plot_pareto([{"run": "int8", "flash_bytes": 13024, "accuracy": 0.969}, ...], "pareto.png")
```

Needs matplotlib (`pip install tflw[plots]`); it is imported only here.
"""

import os
from typing import Sequence, Union

from tflw.errors import TflwError


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display needed, none opened
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise TflwError("plots need matplotlib: pip install matplotlib (or tflw[plots])") from error
    return plt


def plot_layers(analysis, path: Union[str, os.PathLike]) -> None:
    """Bars per op: MACs, weight bytes and activation bytes, on a log scale."""
    plt = _pyplot()
    labels = [f"{op.layer} ({op.name})" for op in analysis.ops]
    series = (("MACs", [op.macs for op in analysis.ops]),
              ("weight bytes", [op.parameter_bytes for op in analysis.ops]),
              ("activation bytes", [op.output_bytes for op in analysis.ops]))
    figure, axes = plt.subplots(1, 3, figsize=(13, 0.35 * len(labels) + 1.5), sharey=True)
    for axis, (title, values) in zip(axes, series):
        axis.barh(range(len(labels)), [max(v, 0.5) for v in values])
        axis.set_xscale("log")
        axis.set_title(title)
    axes[0].set_yticks(range(len(labels)), labels, fontsize=7)
    axes[0].invert_yaxis()
    figure.suptitle(f"{analysis.macs:,} MACs, {analysis.flatbuffer_bytes:,} B flash, "
                    f"{analysis.arena_bytes:,} B arena (measured)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def pareto_front(runs: Sequence[dict], cost: str = "flash_bytes") -> list:
    """The runs no other run beats on both `cost` (smaller) and accuracy (higher)."""
    return [run for run in runs if not any(
        other[cost] <= run[cost] and other["accuracy"] >= run["accuracy"]
        and (other[cost], other["accuracy"]) != (run[cost], run["accuracy"])
        for other in runs)]


_AXIS_LABELS = {"flash_bytes": "flash (bytes)", "arena_bytes": "tensor arena (bytes)"}


def plot_pareto(runs: Sequence[dict], path: Union[str, os.PathLike],
                costs: Sequence[str] = ("flash_bytes",)) -> None:
    """Accuracy against each of `costs` for `runs` (dicts with "run", "accuracy" and each
    cost), one panel per cost, the Pareto front joined by a line."""
    plt = _pyplot()
    figure, axes = plt.subplots(1, len(costs), figsize=(6 * len(costs), 4), squeeze=False)
    for axis, cost in zip(axes[0], costs):
        axis.scatter([r[cost] for r in runs], [100 * r["accuracy"] for r in runs])
        for run in runs:
            axis.annotate(run["run"], (run[cost], 100 * run["accuracy"]), fontsize=7)
        front = sorted(pareto_front(runs, cost), key=lambda r: r[cost])
        axis.plot([r[cost] for r in front], [100 * r["accuracy"] for r in front], "--")
        axis.set_xlabel(_AXIS_LABELS.get(cost, cost))
        axis.set_ylabel("top-1 accuracy (%)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
