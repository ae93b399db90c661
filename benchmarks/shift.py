"""The shift of a shift convolution two ways in TFLite-Micro: PAD + STRIDED_SLICE +
CONCATENATION (`tflw.models.Shift`) against a depthwise convolution with fixed one-hot 3x3
kernels, each followed by the same 1x1 convolution.

    python -m benchmarks.shift

For each tensor size (ShiftResNet-20's three expanded widths at their resolutions): flash,
arena, MACs and host invoke time of both, as ratios slice / depthwise, and whether the
shifted int8 codes are an exact copy of the input's (the same scale and zero point).
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import keras
import numpy as np

import tflw
from benchmarks.common import RESULTS, format_table, machine
from tflw.models.shift import DIRECTIONS, Shift, _group_bounds

SIZES = ((32, 48), (16, 96), (8, 192))  # (side, channels) of ShiftResNet-20's stages
REPEATS = 200
COLUMNS = (("size", "tensor", "{}"), ("variant", "shift as", "{}"),
           ("flash_bytes", "flash B", "{:,}"), ("arena_bytes", "arena B", "{:,}"),
           ("macs", "MACs", "{:,}"), ("invoke_us", "invoke us", "{:.1f}"),
           ("exact_copy", "exact copy", "{}"))


def one_hot_kernel(channels: int) -> np.ndarray:
    """(3, 3, channels, 1): channel group k takes the pixel `DIRECTIONS[k]` away."""
    kernel = np.zeros((3, 3, channels, 1), np.float32)
    for (dy, dx), (start, stop) in zip(DIRECTIONS, _group_bounds(channels)):
        kernel[1 - dy, 1 - dx, start:stop, 0] = 1.0
    return kernel


def model(side: int, channels: int, variant: str) -> keras.Model:
    inputs = keras.Input((side, side, channels))
    if variant == "slice":
        x = Shift(name="shift")(inputs)
    else:
        depthwise = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="shift")
        x = depthwise(inputs)
        depthwise.set_weights([one_hot_kernel(channels)])
    return keras.Model(inputs, keras.layers.Conv2D(16, 1, name="mix")(x))


def measure(side: int, channels: int, variant: str, folder: Path) -> dict:
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).uniform(-1, 1, (32, side, side, channels)).astype("float32")
    qat = tflw.quantize_model(model(side, channels, variant), calibration_data=x)
    result = tflw.export(qat, folder / f"{variant}_{side}", sample_inputs=x[:4])
    probe = keras.Model(qat.inputs, qat.get_layer("shift").output)
    shifted = tflw.export(probe, folder / f"{variant}_{side}_probe", sample_inputs=x[:4])
    source, target = shifted.info.inputs[0], shifted.info.outputs[0]
    timing = tflw.verify(result.tflite_path, np.repeat(x[:1], REPEATS, axis=0))
    return {"size": f"{side}x{side}x{channels}", "variant": variant,
            "flash_bytes": result.flatbuffer_bytes, "arena_bytes": result.arena_bytes,
            "macs": result.info.macs, "invoke_us": timing.invoke_seconds * 1e6,
            "exact_copy": (source.scale, source.zero_point) == (target.scale, target.zero_point)}


def main(argv=None) -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for side, channels in SIZES:
            pair = [measure(side, channels, variant, Path(folder))
                    for variant in ("slice", "depthwise")]
            for key in ("flash_bytes", "arena_bytes", "invoke_us"):
                pair[0][f"{key}_vs_depthwise"] = pair[0][key] / pair[1][key]
            rows += pair
            print(format_table(pair, COLUMNS), flush=True)
    (RESULTS / "shift.json").write_text(json.dumps({
        "machine": machine(), "date": time.strftime("%Y-%m-%d"),
        "command": "python -m benchmarks.shift " + " ".join(sys.argv[1:] if argv is None else argv),
        "rows": rows}, indent=2) + "\n")
    print(format_table(rows, COLUMNS))


if __name__ == "__main__":
    main()
