"""Flash by part, read from a GNU ld map of a `tflw firmware check` Cortex-M4 build.

```python
flash_by_part(Path("check.map").read_text())
# {'model': 10832, 'sketch': 1204, 'runtime': 38012, 'kernels': 21876, 'decode': 0, ...}
```
"""

import re

# Output sections stored in flash: code and constants, unwind tables, and the initial
# values of .data (copied to RAM at reset on a board).
FLASH_SECTIONS = (".text", ".ARM.exidx", ".data")
PARTS = ("model", "sketch", "runtime", "kernels", "decode", "c library and start-up")
_INPUT = re.compile(r"^ (\S+)?\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S.*)$")


def part_of(origin: str) -> str:
    """Which part an input file of the link (an object, or `lib.a(member.o)`) belongs to."""
    member = re.search(r"libtflm\.a\((.+)\)$", origin)
    if member:
        name = member.group(1)
        if "kernels__decode" in name:
            return "decode"
        if "micro__kernels__" in name or name.startswith("Source__"):
            return "kernels"
        return "runtime"
    if origin.endswith("model_data.o"):
        return "model"
    if origin.endswith("check_main.o"):
        return "sketch"
    return "c library and start-up"


def flash_by_part(map_text: str) -> dict:
    """Bytes of flash per part of `PARTS`, and their total."""
    sizes = dict.fromkeys(PARTS, 0)
    body = map_text.split("Linker script and memory map", 1)[-1]
    output, pending = None, False
    for line in body.splitlines():
        if re.match(r"^\.\S+", line):
            output = line.split()[0]
            continue
        if output not in FLASH_SECTIONS:
            continue
        if re.match(r"^ \S+$", line) and not line.strip().startswith("*"):
            pending = True  # a long input-section name: its address and size follow
            continue
        match = _INPUT.match(line) if (pending or line.startswith(" .")) else None
        pending = False
        if match and int(match.group(3), 16):
            sizes[part_of(match.group(4).strip())] += int(match.group(3), 16)
    sizes["total"] = sum(sizes[part] for part in PARTS)
    return sizes
