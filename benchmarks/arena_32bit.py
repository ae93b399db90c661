"""The 32-bit arena export estimates, against Cortex-M4 builds of TFLite-Micro.

    python -m benchmarks.arena_32bit --tflm ~/tflite-micro --cmsis-nn ~/CMSIS-NN

For each model: export (TFLite-Micro's own memory plan), the arena the host Python
interpreter measures, the 32-bit estimate from its recording (`tflw.export.arena_32bit`),
and what `tflw firmware check --target cortex-m4` measures in a Cortex-M4 build of the same
sources under qemu (reference kernels), split into non-persistent and persistent bytes.
With --cmsis-nn, the same sketch is built with CMSIS-NN's kernels too, against the sketch's
`kTensorArenaSize` for a 32-bit MCU (the estimate + 1 % + the CMSIS-NN margin of
`tflw.export.cmsis_nn_arena`). The estimate's two fitted constants come from these rows;
rerun after changing TFLite-Micro.
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
from tflw.demo import build_demo_model

MODELS = {"demo": build_demo_model, "ds_cnn": tflw.models.ds_cnn,
          "gesture_cnn": tflw.models.gesture_cnn, "resnet8": tflw.models.resnet8}
COLUMNS = (("model", "model", "{}"), ("host_arena_bytes", "host (Python) B", "{:,}"),
           ("estimate_bytes", "32-bit estimate B", "{:,}"),
           ("cortex_m4_arena_bytes", "Cortex-M4 B", "{:,}"), ("error_percent", "error %", "{:+.2f}"),
           ("cmsis_nn_arena_bytes", "CMSIS-NN B", "{:,}"),
           ("cmsis_nn_added_bytes", "CMSIS-NN added B", "{:,}"),
           ("cmsis_nn_margin_bytes", "margin for it B", "{:,}"),
           ("sketch_arena_size", "kTensorArenaSize", "{:,}"), ("sketch_holds", "holds", "{}"))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tflm", required=True, help="a TFLite-Micro tree")
    parser.add_argument("--cmsis-nn", type=Path, help="a CMSIS-NN tree: build with its kernels too")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name in args.models:
            keras.utils.set_random_seed(0)
            model = MODELS[name]()
            x = np.random.default_rng(0).uniform(0, 1, (4, *model.input_shape[1:]))
            # per-tensor Dense: dense="auto" chooses by measurement, which moves the arena
            result = tflw.export(model, Path(folder) / name, minimize_arena=False,
                                 dense="per-tensor", representative_data=x.astype("float32"))
            check = tflw.firmware.check_firmware(Path(folder) / name, args.tflm,
                                                 target="cortex-m4", samples=2)
            estimate = result.report["arena_32bit"]
            cmsis = None if args.cmsis_nn is None else tflw.firmware.check_firmware(
                Path(folder) / name, args.tflm, cmsis_nn=args.cmsis_nn, target="cortex-m4",
                samples=2)
            builds = [check.arena_used_bytes] + ([] if cmsis is None else [cmsis.arena_used_bytes])
            rows.append({
                "model": name, "host_arena_bytes": result.arena_bytes,
                "estimate_bytes": estimate["arena_bytes"],
                "estimate_non_persistent_bytes": estimate["non_persistent_bytes"],
                "cortex_m4_arena_bytes": check.arena_used_bytes,
                "cortex_m4_non_persistent_bytes": check.arena_parts["planned"],
                "error_percent": 100 * (estimate["arena_bytes"] / check.arena_used_bytes - 1),
                "cmsis_nn_arena_bytes": None if cmsis is None else cmsis.arena_used_bytes,
                "cmsis_nn_added_bytes": None if cmsis is None else (
                    cmsis.arena_used_bytes - check.arena_used_bytes),
                "cmsis_nn_margin_bytes": result.report["cmsis_nn_arena"]["margin_bytes"],
                "sketch_arena_size": result.arena_size,
                "sketch_holds": all(used <= result.arena_size for used in builds),
            })
            print(format_table(rows[-1:], COLUMNS), flush=True)
    (RESULTS / "arena_32bit.json").write_text(json.dumps({
        "machine": machine(), "date": time.strftime("%Y-%m-%d"),
        "command": "python -m benchmarks.arena_32bit " + " ".join(
            sys.argv[1:] if argv is None else argv),
        "rows": rows}, indent=2) + "\n")
    print(format_table(rows, COLUMNS))


if __name__ == "__main__":
    main()
