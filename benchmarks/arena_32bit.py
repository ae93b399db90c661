"""The 32-bit arena export estimates, against Cortex-M4 builds of TFLite-Micro.

    python -m benchmarks.arena_32bit --tflm ~/tflite-micro

For each model: export (TFLite-Micro's own memory plan), the arena the host Python
interpreter measures, the 32-bit estimate from its recording (`tflw.export.arena_32bit`),
and what `tflw firmware check --target cortex-m4` measures in a Cortex-M4 build of the same
sources under qemu (reference kernels), split into non-persistent and persistent bytes.
The estimate's two fitted constants come from these rows; rerun after changing TFLite-Micro.
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
           ("cortex_m4_arena_bytes", "Cortex-M4 B", "{:,}"), ("error_percent", "error %", "{:+.2f}"))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tflm", required=True, help="a TFLite-Micro tree")
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
            rows.append({
                "model": name, "host_arena_bytes": result.arena_bytes,
                "estimate_bytes": estimate["arena_bytes"],
                "estimate_non_persistent_bytes": estimate["non_persistent_bytes"],
                "cortex_m4_arena_bytes": check.arena_used_bytes,
                "cortex_m4_non_persistent_bytes": check.arena_parts["planned"],
                "error_percent": 100 * (estimate["arena_bytes"] / check.arena_used_bytes - 1),
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
