"""Firmware: the exported sketch built against a TFLite-Micro tree the user has, run on the
host or on qemu's Cortex-M4, and compared with the Python interpreter bit for bit.

```python
check = tflw.firmware.check_firmware("tflw-demo", "~/tflite-micro", target="cortex-m4")
print(check.bit_exact, check.arena_used_bytes, check.flash)
tflw.firmware.record_arena("tflw-demo", check)   # kTensorArenaSize from the 32-bit measurement
```
"""

from tflw.firmware.check import FirmwareCheck, check_firmware
from tflw.firmware.record import record_arena

__all__ = ["FirmwareCheck", "check_firmware", "record_arena"]
