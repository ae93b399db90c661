"""Record a firmware measurement in the export it came from: the sketch's
`kTensorArenaSize` set to the arena the built firmware used, and report.json's "firmware".

```python
check = check_firmware("tflw-demo", tflm, target="cortex-m4")
record_arena("tflw-demo", check)      # kTensorArenaSize = 11424 (11,412 B measured)
```
"""

import json
import os
from pathlib import Path

from tflw.errors import FirmwareBuildError
from tflw.export.firmware import aligned_16, sketch_arena_sizes, with_arena
from tflw.firmware.check import FirmwareCheck, sketch_path


def _replace(path: Path, text: str) -> None:
    """Write `text` to `path` all at once: a failure leaves the old file whole."""
    staged = path.with_name(f".{path.name}.tflw-new")
    staged.write_text(text)
    os.replace(staged, path)


def record_arena(out_dir, check: FirmwareCheck) -> int:
    """Set the sketch's `kTensorArenaSize` for `check`'s word size (a 32-bit MCU, or a
    64-bit host for target "host") to its measured arena (rounded up to 16) and add the
    measurement to report.json; returns the new `kTensorArenaSize`.

    arena_used_bytes() is what the firmware keeps, not what AllocateTensors() needs while
    it plans: on a 32-bit MCU the figure gets export's estimate of that excess
    (report.json's arena_32bit min_arena_bytes less arena_bytes, 0 on most models)."""
    if check.model != "int8":
        raise FirmwareBuildError("record the arena of the sketch's own model (model='int8'); "
                                 "the compressed model's arena is in report.json's \"lut\".")
    out_dir = Path(out_dir)
    sketch = sketch_path(out_dir)
    kernels = "CMSIS-NN" if check.kernels == "cmsis_nn" else "reference"
    sizes = sketch_arena_sizes(sketch.read_text())
    report_path = out_dir / "report.json"
    report = json.loads(report_path.read_text())
    word = "host" if check.target == "host" else "mcu"
    estimate = report.get("arena_32bit") or {}
    planning = 0 if word == "host" else max(0, estimate.get("min_arena_bytes", 0)
                                            - estimate.get("arena_bytes", 0))
    sizes[word] = check.arena_used_bytes + planning
    comment = (f"Measured by tflw firmware check: TFLite-Micro on {check.target} with {kernels} "
               f"kernels used {check.arena_used_bytes} bytes (arena_used_bytes())"
               + (f", plus {planning} that AllocateTensors() needs while it plans" if planning
                  else "")
               + f", rounded up to 16, for {'a 64-bit host' if word == 'host' else 'a 32-bit MCU'}"
               f"; the other word size keeps tflw export's "
               f"{sizes['mcu' if word == 'host' else 'host']}. The host's Python interpreter "
               f"needed {check.python_arena_bytes}.")
    sketch_text = with_arena(sketch.read_text(), sizes, comment)
    report["firmware"] = check.as_dict()
    _replace(sketch, sketch_text)
    _replace(report_path, json.dumps(report, indent=2) + "\n")
    return aligned_16(sizes[word])
