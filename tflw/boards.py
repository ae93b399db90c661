"""Board profiles: the flash and RAM a model may use, and a rough speed per MAC.

```python
board = tflw.boards.get("nano33ble")
print(board.model_flash_budget, board.arena_budget)
tflw.export(qat_model, "build/kws", board="nano33ble")   # fails clearly if it does not fit
```

The budgets subtract what the firmware around the model takes: the TFLite-Micro runtime
with its kernels and the board's core libraries (flash), and stack, heap and core state
(RAM). Those reserves are estimates for a sketch that does little besides inference; pass
your own with `dataclasses.replace(board, runtime_flash=..., runtime_ram=...)`.

Latency figures are estimates, not measurements: `cycles_per_mac` times the model's MACs,
divided by the clock. Each board names the source of its figure in `speed_source`.
Measure on the board (the generated sketch prints the invoke time) before relying on it.
"""

from dataclasses import dataclass

from tflw.errors import UnknownBoardError

KIB = 1024

# CMSIS-NN (Lai, Suda & Chandra 2018, arXiv:1801.06601): the CIFAR-10 CNN of that paper
# (about 12.3 M MACs) runs at 10.1 images/s on a 216 MHz Cortex-M7, i.e. about 1.7 cycles
# per MAC with int8/q7 kernels; the other cores are scaled from it, as stated per board.
_CMSIS_NN_M7 = "CMSIS-NN paper (Lai et al. 2018): ~1.7 cycles/MAC on Cortex-M7"


@dataclass(frozen=True)
class Board:
    """A microcontroller board as far as a model is concerned.

    Attributes:
        key: short name used by `get` and `export(board=...)`.
        name: the board's product name; `mcu` its chip and core.
        clock_hz: CPU clock.
        flash_bytes, ram_bytes: what the chip has.
        runtime_flash, runtime_ram: estimated firmware reserve besides model and arena.
        cycles_per_mac: estimated CPU cycles per int8 multiply-accumulate with the
            optimized kernels for this core; `speed_source` says where it comes from.
    """

    key: str
    name: str
    mcu: str
    clock_hz: int
    flash_bytes: int
    ram_bytes: int
    runtime_flash: int
    runtime_ram: int
    cycles_per_mac: float
    speed_source: str

    @property
    def model_flash_budget(self) -> int:
        """Flash left for the model's flatbuffer."""
        return self.flash_bytes - self.runtime_flash

    @property
    def arena_budget(self) -> int:
        """RAM left for the tensor arena."""
        return self.ram_bytes - self.runtime_ram

    def latency_seconds(self, macs: int) -> float:
        """Estimated inference time for `macs` multiply-accumulates (see `speed_source`)."""
        return macs * self.cycles_per_mac / self.clock_hz


BOARDS = {
    board.key: board
    for board in (
        Board("nano33ble", "Arduino Nano 33 BLE Sense", "nRF52840, Cortex-M4F", 64_000_000,
              1024 * KIB, 256 * KIB, runtime_flash=160 * KIB, runtime_ram=48 * KIB,
              cycles_per_mac=3.4,
              speed_source=_CMSIS_NN_M7 + "; x2 for the single-issue Cortex-M4 (assumed)"),
        Board("portenta_h7", "Arduino Portenta H7", "STM32H747, Cortex-M7 480 MHz",
              480_000_000, 2048 * KIB, 1024 * KIB, runtime_flash=256 * KIB,
              runtime_ram=128 * KIB, cycles_per_mac=1.7, speed_source=_CMSIS_NN_M7),
        Board("esp32s3", "ESP32-S3 DevKitC-1 (N8R2)", "ESP32-S3, Xtensa LX7 240 MHz",
              240_000_000, 8192 * KIB, 512 * KIB, runtime_flash=512 * KIB,
              runtime_ram=128 * KIB, cycles_per_mac=2.0,
              speed_source="assumed: ESP-NN on the LX7's 128-bit SIMD, taken as close to "
              "CMSIS-NN on Cortex-M7; not measured"),
        Board("pico", "Raspberry Pi Pico", "RP2040, Cortex-M0+ 133 MHz", 133_000_000,
              2048 * KIB, 264 * KIB, runtime_flash=192 * KIB, runtime_ram=40 * KIB,
              cycles_per_mac=12.0,
              speed_source="assumed: Cortex-M0+ has no DSP/SIMD MAC instructions; ~7x the "
              "Cortex-M7 figure of the CMSIS-NN paper (Lai et al. 2018)"),
    )
}


def get(board) -> Board:
    """The `Board` for a key such as "nano33ble" (a `Board` is returned unchanged)."""
    if isinstance(board, Board):
        return board
    try:
        return BOARDS[board]
    except (KeyError, TypeError):
        known = ", ".join(f"'{key}' ({b.name})" for key, b in BOARDS.items())
        raise UnknownBoardError(
            f"unknown board {board!r}: use one of {known}, or a tflw.boards.Board of your own"
        ) from None
