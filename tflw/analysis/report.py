"""A Markdown report a user opens: the per-op table, the board budget and the plot.

```python
write_report(tflw.analyze(model, board="nano33ble"), "build/report")   # report.md, layers.png
```
"""

import json
import os
from pathlib import Path
from typing import Union

from tflw.analysis.analyze import Analysis, summary
from tflw.analysis.plots import plot_layers


def write_report(analysis: Analysis, folder: Union[str, os.PathLike]) -> Path:
    """Write `report.md`, `analysis.json` and `layers.png` into `folder`; return report.md."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    plot_layers(analysis, folder / "layers.png")
    (folder / "analysis.json").write_text(json.dumps(analysis.to_dict(), indent=2) + "\n")
    lines = [
        "# Model report",
        "",
        f"- flash: **{analysis.flatbuffer_bytes:,} B** (flatbuffer)",
        f"- tensor arena: **{analysis.arena_bytes:,} B**, measured in TFLite-Micro",
        f"- {analysis.parameters:,} parameters, {analysis.macs:,} MACs per inference",
        f"- host TFLite-Micro invoke: {analysis.host_invoke_seconds * 1e6:.0f} us "
        "(reference kernels on this computer, for comparing models)",
        "",
        "![per-layer MACs and bytes](layers.png)",
        "",
        "```",
        summary(analysis),
        "```",
        "",
    ]
    path = folder / "report.md"
    path.write_text("\n".join(lines))
    return path
