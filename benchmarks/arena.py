"""The tensor arena: TFLite-Micro's default plan against tflw's, over the zoo.

    python -m benchmarks.arena [--models ds_cnn resnet8 ...]

For each model (untrained: the arena depends on shapes, not on weights), quantized with
4-bit weights and exported twice: `minimize_arena=False` (TFLite-Micro's own greedy plan)
and the default (tflw's offline memory plan, kept where the measured arena is smaller).
int8 rows: the uncompressed flatbuffer; LUT rows: TFLite-Micro's default (every low-bit
tensor compressed, decoded into the arena, its own plan) against tflw's (tensors whose
decoded copy would raise the peak kept int8, then planned). Columns: measured arenas
(host interpreter), the lower bound of the schedule's arena (the most bytes alive at once
plus the part no plan touches: persistent structs and scratch), flash, the LUT arena over
its int8 twin's, and the rewrites' MAC overhead. Written to results/arena.json.
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import tflw  # noqa: E402
from benchmarks.common import RESULTS, format_table, machine  # noqa: E402
from tflw.export.lut import lut_compress  # noqa: E402
from tflw.models.blocks import conv_bn_relu, inverted_residual  # noqa: E402

NAME = "arena"


def inverted_residual_net(input_shape=(96, 96, 3), classes: int = 2) -> keras.Model:
    """A MobileNetV2-0.35-style stem and first stages: the expanded tensors of the early,
    high-resolution blocks are the peak, the case patch-based execution targets."""
    inputs = keras.Input(input_shape)
    x = conv_bn_relu(inputs, 16, 3, strides=2, activation="relu6", name="stem")
    x = inverted_residual(x, 8, expansion=1, name="ir1")
    for index, (filters, strides) in enumerate([(8, 2), (8, 1), (16, 2), (16, 1), (24, 2)]):
        x = inverted_residual(x, filters, expansion=6, strides=strides, name=f"ir{index + 2}")
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(classes)(x), name="inverted_residual")


MODELS = {
    "ds_cnn": lambda: tflw.models.ds_cnn(),
    "resnet8": lambda: tflw.models.resnet8(),
    "resnet20": lambda: tflw.models.resnet20(),
    "mobilenet_v1_0.25_96": lambda: tflw.models.mobilenet_v1(0.25, (96, 96, 3)),
    "gesture_cnn": lambda: tflw.models.gesture_cnn(),
    "inverted_residual": inverted_residual_net,
}


def measure(name: str, folder: Path) -> list:
    """An int8 row and a LUT row for the model at 4-bit weights (its int8 flatbuffer has
    the 8-bit model's shapes, so the same arena)."""
    keras.utils.set_random_seed(0)
    model = MODELS[name]()
    x = np.random.default_rng(0).uniform(0, 1, (16, *model.input_shape[1:])).astype("float32")
    qat = tflw.quantize_model(model, calibration_data=x, weight_bits=4)
    default = tflw.export(qat, folder / "default", sample_inputs=x[:4], minimize_arena=False,
                          compress="never")
    planned = tflw.export(qat, folder / "planned", sample_inputs=x[:4])
    arena = planned.report["arena"]
    # What no plan of the head changes: the measured arena less the head it planned.
    rest = arena["arena_bytes"] - (arena["offline_plan_head_bytes"] if arena["offline_plan"]
                                   else arena["tflm_default_head_bytes_estimate"])
    rows = [{"model": name, "runtime": "int8", "tflm_default_arena": default.arena_bytes,
             "tflw_arena": planned.arena_bytes,
             "lower_bound_arena": arena["lower_bound_head_bytes"] + rest,
             "vs_default": planned.arena_bytes / default.arena_bytes,
             "offline_plan": arena["offline_plan"], "flash_bytes": planned.flatbuffer_bytes,
             "flash_added_bytes": arena.get("flash_added_bytes", 0), "mac_overhead": 0.0}]
    lut = planned.report["lut"]
    if lut is not None:
        # TFLite-Micro's default: every low-bit tensor compressed, its own plan
        every = lut_compress(default.tflite_path.read_bytes(), within_arena=False)
        every_arena = tflw.verify(every.model_bytes, x[:1]).arena_bytes
        # every tensor kept int8: the runtime with DECODE runs the int8 model
        compressed = lut["arena"] if lut["tensors"] else arena
        tflw_arena = compressed["arena_bytes"]
        rows.append({**rows[0], "runtime": "LUT (DECODE)", "tflm_default_arena": every_arena,
                     "tflm_default_flash_bytes": len(every.model_bytes),
                     "tflw_arena": tflw_arena, "lower_bound_arena": None,
                     "vs_default": tflw_arena / every_arena,
                     "offline_plan": compressed["offline_plan"],
                     "flash_bytes": (lut["flatbuffer_bytes"] if lut["tensors"]
                                     else planned.flatbuffer_bytes),
                     "flash_added_bytes": compressed.get("flash_added_bytes", 0),
                     "kept_int8_for_arena": len(lut["kept_int8_for_arena"]),
                     "vs_int8_twin": tflw_arena / planned.arena_bytes})
    return rows


COLUMNS = (("model", "model", "{}"), ("runtime", "runtime", "{}"),
           ("tflm_default_arena", "TFLM default B", "{:,}"), ("tflw_arena", "tflw B", "{:,}"),
           ("vs_default", "tflw / default", "{:.3f}"),
           ("lower_bound_arena", "lower bound B", "{:,}"), ("flash_bytes", "flash B", "{:,}"),
           ("tflm_default_flash_bytes", "default flash B", "{:,}"),
           ("flash_added_bytes", "plan's flash B", "{:,}"),
           ("vs_int8_twin", "LUT / int8", "{:.3f}"),
           ("kept_int8_for_arena", "kept int8", "{}"), ("mac_overhead", "MAC overhead", "{:.1%}"))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="tflw-arena-") as folder:
        for name in args.models:
            start = time.perf_counter()
            new = measure(name, Path(folder) / name)
            for row in new:
                row["seconds"] = time.perf_counter() - start
            rows.extend(new)
            print(format_table(new, COLUMNS), flush=True)
    payload = {"machine": machine(), "date": time.strftime("%Y-%m-%d"),
               "command": "python -m benchmarks.arena " + " ".join(
                   sys.argv[1:] if argv is None else argv), "rows": rows}
    (RESULTS / f"{NAME}.json").write_text(json.dumps(payload, indent=2) + "\n")
    print(format_table(rows, COLUMNS))


if __name__ == "__main__":
    main()
