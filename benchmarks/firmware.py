"""Exported firmware built against TFLite-Micro's sources and run: host and Cortex-M4
(qemu mps2-an386), reference and CMSIS-NN kernels, bit for bit against the Python
interpreter, with the 32-bit arena and flash by part.

python -m benchmarks.firmware --tflm ~/tflite-micro --cmsis-nn ~/CMSIS-NN

The TFLite-Micro tree needs its third-party downloads (flatbuffers, gemmlowp, ruy) in
tensorflow/lite/micro/tools/make/downloads/; the first run compiles each library (about
10 minutes each on 2 cores), later runs relink.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import keras

import tflw
from benchmarks.common import RESULTS, format_table, write_results
from tflw.data import load_mnist_subset
from tflw.demo import build_demo_model
from tflw.firmware import check_firmware

RUNTIME_TABLE = Path(tflw.__file__).parent / "export" / "runtime_flash.json"
COLUMNS = [("export", "export", "{}"), ("model", "model", "{}"), ("target", "target", "{}"),
           ("kernels", "kernels", "{}"), ("identical", "identical", "{}"),
           ("max_lsb_difference", "max LSB", "{}"), ("arena_used_bytes", "arena B", "{:,}"),
           ("python_arena_bytes", "Python arena B", "{:,}"), ("flash_model", "model B", "{:,}"),
           ("flash_runtime", "runtime B", "{:,}"), ("flash_kernels", "kernels B", "{:,}"),
           ("flash_decode", "DECODE B", "{:,}"), ("flash_total", "flash B", "{:,}"),
           ("first_differing_ops", "first differing ops", "{}")]


def trained(model, x, y, epochs: int, callbacks=()):
    model.compile(keras.optimizers.Adam(1e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=epochs, batch_size=64, verbose=0, callbacks=list(callbacks))
    return model


def exports(folder: Path, x, y, x_test) -> dict:
    """Name -> export folder of the four kinds the issue names, from one float demo CNN."""
    keras.utils.set_random_seed(0)
    float_model = trained(build_demo_model(), x, y, epochs=3)
    kinds = {
        "int8": tflw.quantize_model(float_model, calibration_data=x[:256]),
        "int16": tflw.quantize_model(float_model, calibration_data=x[:256], activation_bits=16),
        "w4 lut": tflw.quantize_model(float_model, calibration_data=x[:256], weight_bits=4),
    }
    pruned = tflw.prune_model(float_model, tflw.ConstantSparsity(0.5, 0, frequency=10),
                              structure="channels", skip=["logits"])
    small = tflw.strip_pruning(trained(pruned, x, y, epochs=1,
                                       callbacks=[tflw.UpdatePruningStep()]))
    kinds["channel-pruned"] = tflw.quantize_model(small, calibration_data=x[:256])
    folders = {}
    for name, qat in kinds.items():
        trained(qat, x[:2000], y[:2000], epochs=1)
        folders[name] = folder / name.replace(" ", "_")
        tflw.export(qat, folders[name], sample_inputs=x_test[:200], compress="always")
    return folders


def row(name: str, check) -> dict:
    flash = check.flash or {}
    starts = [f"{op['op']} ({op['differing_values']} values, {op['max_lsb_difference']} LSB)"
              for op in check.op_differences or []
              if op["differing_values"] and op["inputs_identical"]]
    return {"export": name, "model": check.model, "target": check.target,
            "kernels": check.kernels, "identical": f"{check.identical_samples}/{check.samples}",
            "max_lsb_difference": check.max_lsb_difference,
            "arena_used_bytes": check.arena_used_bytes,
            "python_arena_bytes": check.python_arena_bytes,
            **{f"flash_{part.split()[0]}": size for part, size in flash.items()},
            "first_differing_ops": "; ".join(starts) or ("-" if check.op_differences is None else "none"),
            "check": check.as_dict()}


def markdown_table(rows: list) -> str:
    """A markdown table of these results."""
    lines = ["| export | model | target | kernels | bit-identical | max LSB | arena B | "
             "Python arena B | model B | runtime B | kernels B | DECODE B | C library B | "
             "flash B | differences start at |", "|---" * 15 + "|"]
    for row in rows:
        check, flash = row["check"], row["check"]["flash"] or {}
        cells = [row["export"], check["model"], check["target"], check["kernels"],
                 f"{check['identical_samples']}/{check['samples']}",
                 f"{check['max_lsb_difference']:,}", f"{check['arena_used_bytes']:,}",
                 f"{check['python_arena_bytes']:,}",
                 *(f"{flash[part]:,}" if part in flash else "-" for part in
                   ("model", "runtime", "kernels", "decode", "c library and start-up", "total")),
                 row["first_differing_ops"]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def decode_cost(rows: list) -> dict:
    """DECODE's flash on the Cortex-M4 reference build: what the compressed W4 firmware
    takes beyond the int8 one, less the model bytes compression saved."""
    def flash(model: str) -> dict:
        return next(r["check"]["flash"] for r in rows if r["export"] == "w4 lut"
                    and r["model"] == model and r["target"] == "cortex-m4"
                    and r["kernels"] == "reference")
    int8, compressed = flash("int8"), flash("compressed")
    return {"decode_bytes": (compressed["total"] - compressed["model"])
            - (int8["total"] - int8["model"]),
            "model_bytes_saved": int8["model"] - compressed["model"]}


def write_runtime_table(cost: dict, tflm_version: str) -> None:
    """The measured DECODE cost into tflw's table (tflw/export/runtime_flash.json)."""
    table = RUNTIME_TABLE.read_text()
    payload = json.loads(table)
    payload.update(decode_bytes=cost["decode_bytes"], tflite_micro=tflm_version, _source=(
        "Flash that MicroMutableOpResolver::AddDecode() and the DECODE kernels add to a "
        "Cortex-M4 firmware (arm-none-eabi-g++ -Os, --gc-sections, TFLite-Micro's plain "
        "library and reference kernels): the W4 LUT model's firmware less the int8 one, "
        "model bytes aside. Written by benchmarks/firmware.py --write-runtime-table "
        "(results/firmware.json)."))
    RUNTIME_TABLE.write_text(json.dumps(payload, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tflm", help="TFLite-Micro source tree")
    parser.add_argument("--markdown", action="store_true",
                        help="print a markdown table of results/<--results>.json and stop")
    parser.add_argument("--cmsis-nn", help="CMSIS-NN source tree (adds the CMSIS-NN runs)")
    parser.add_argument("--samples", type=int, default=50, help="test digits per run")
    parser.add_argument("--results", default="firmware", help="results/<name>.json")
    parser.add_argument("--tflm-version", default="unknown",
                        help="which TFLite-Micro the tree is (a commit), for the results")
    parser.add_argument("--write-runtime-table", action="store_true",
                        help="store the measured DECODE cost in tflw/export/runtime_flash.json")
    args = parser.parse_args()
    if args.markdown:
        print(markdown_table(json.loads((RESULTS / f"{args.results}.json").read_text())["rows"]))
        return
    if not args.tflm:
        parser.error("--tflm is required to build firmware")
    (x, y), (x_test, _) = load_mnist_subset()
    rows, started = [], time.time()
    with tempfile.TemporaryDirectory() as folder:
        for name, out_dir in exports(Path(folder), x, y, x_test).items():
            runs = [("int8", "host", None), ("int8", "cortex-m4", None)]
            if args.cmsis_nn:
                runs.append(("int8", "cortex-m4", args.cmsis_nn))
            if name == "w4 lut":
                runs += [("compressed", "host", None), ("compressed", "cortex-m4", None)]
            for model, target, cmsis_nn in runs:
                check = check_firmware(out_dir, args.tflm, cmsis_nn=cmsis_nn, target=target,
                                       inputs=x_test, samples=args.samples, model=model)
                rows.append(row(name, check))
                print(format_table(rows[-1:], COLUMNS).splitlines()[-1], flush=True)
                write_results(args.results, {"rows": rows, "tflm": args.tflm_version,
                                             "cmsis_nn": args.cmsis_nn,
                                             "seconds": time.time() - started})
    print(format_table(rows, COLUMNS))
    cost = decode_cost(rows)
    print(f"DECODE on the Cortex-M4: {cost['decode_bytes']:,} B of code for "
          f"{cost['model_bytes_saved']:,} B of model saved")
    write_results(args.results, {"rows": rows, "tflm": args.tflm_version,
                                 "cmsis_nn": args.cmsis_nn, "decode": cost,
                                 "seconds": time.time() - started})
    if args.write_runtime_table:
        write_runtime_table(cost, args.tflm_version)


if __name__ == "__main__":
    main()
