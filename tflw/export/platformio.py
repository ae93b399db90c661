"""A PlatformIO project beside the Arduino sketch: `platformio.ini` with one environment
per board tflw knows, and the sketch as `src/main.cpp`.

```python
files = platformio_files(sketch_text, arrays, name="mnist_cnn", board_key="nano33ble")
files["platformio/mnist_cnn/platformio.ini"]
```
"""

from typing import Optional

from tflw import __version__
from tflw.export.firmware import CHIRALE_VERSION
from tflw.export.templates import render

# tflw board key -> (PlatformIO platform, PlatformIO board id)
PLATFORMIO_BOARDS = {
    "nano33ble": ("nordicnrf52", "nano33ble"),
    "portenta_h7": ("ststm32", "portenta_h7_m7"),
    "esp32s3": ("espressif32", "esp32-s3-devkitc-1"),
    "pico": ("raspberrypi", "pico"),
}
DEFAULT_BOARD = "nano33ble"


def platformio_files(sketch_text: str, arrays: dict, name: str,
                     board_key: Optional[str] = None) -> dict:
    """Path (under the export folder) -> text of the PlatformIO project; `arrays` are the
    model's C array files, `board_key` the environment built by default."""
    default = board_key if board_key in PLATFORMIO_BOARDS else DEFAULT_BOARD
    environments = "\n".join(f"\n[env:{key}]\nplatform = {platform}\nboard = {board}"
                             for key, (platform, board) in PLATFORMIO_BOARDS.items())
    folder = f"platformio/{name}"
    ini = render("platformio/platformio.ini", model_name=name, tflw_version=__version__,
                 default_env=default, chirale_version=CHIRALE_VERSION,
                 environments=environments)
    # An .ino gets `#include <Arduino.h>` from the Arduino IDE; a .cpp must say it.
    main = "#include <Arduino.h>\n\n" + sketch_text
    return {f"{folder}/platformio.ini": ini, f"{folder}/src/main.cpp": main,
            **{f"{folder}/src/{file}": text for file, text in arrays.items()}}
