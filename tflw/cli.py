"""The `tflw` command: demo, export, verify, report."""

import argparse
import contextlib
import logging
import os
import sys
import tempfile
from typing import Iterator, Optional, Sequence

import numpy as np

from tflw.errors import TflwError


def _demo(args) -> None:
    from tflw.demo import run_demo

    run_demo(out_dir=args.out, float_epochs=args.epochs, qat_epochs=args.qat_epochs)


def _load_inputs(path: Optional[str]):
    """Inputs from a file: a .npy array, or an .npz with one array per model input, by
    input name (a dict) or as np.savez(path, a, b) stores them (arr_0, arr_1, ...: a list)."""
    if path is None:
        return None
    try:
        loaded = np.load(path)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            return loaded
        arrays = {name: loaded[name] for name in loaded.files}
    except (OSError, ValueError) as error:
        raise TflwError(f"cannot read inputs from '{path}' ({error}): give a .npy file, or an "
                        ".npz with one array per model input") from error
    positional = [f"arr_{i}" for i in range(len(arrays))]
    return [arrays[name] for name in positional] if sorted(arrays) == sorted(positional) else arrays


def _post_training_quantized(path: str, data, bits: int):
    """The float model at `path` quantized by `tflw.ptq` on `data`: no labels, no training."""
    from tflw.export.convert import is_quantization_aware
    from tflw.model_file import load_model
    from tflw.ptq import ptq

    if data is None:
        raise TflwError("--weight-bits quantizes a float model on typical inputs: give them "
                        "with --data (a .npy, no labels needed)")
    model = load_model(path)
    if is_quantization_aware(model):
        raise TflwError(f"'{path}' is already quantized (a QAT model): export it without "
                        "--weight-bits")
    below_8 = "equalization, AdaRound, " if bits < 8 else ""
    print(f"tflw: quantizing '{model.name}' without training (tflw.ptq, {bits}-bit weights: "
          f"MSE ranges, {below_8}bias correction)", file=sys.stderr, flush=True)
    return ptq(model, data, weight_bits=bits, progress=True)


def _export(args) -> None:
    from tflw.export import export

    data = _load_inputs(args.data)
    model = (args.model if args.weight_bits is None
             else _post_training_quantized(args.model, data, args.weight_bits))
    result = export(
        model, args.out, representative_data=data,
        name=args.name, overwrite=args.force, board=args.board, progress=True,
        compress=args.compress, dense=args.dense, minimize_arena=not args.default_arena,
    )
    print(f"wrote {result.out_dir}/: {result.flatbuffer_bytes:,} B flatbuffer, "
          f"arena {result.arena_bytes:,} B measured (kTensorArenaSize {result.arena_size:,})")
    arena = result.report["arena"]
    if arena is not None and arena["arena_bytes"] < arena["tflm_default_arena_bytes"]:
        splits = len(arena["channel_splits"])
        print(f"arena planned offline{f' with {splits} channel split(s)' if splits else ''}: "
              f"{arena['tflm_default_arena_bytes']:,} B with TFLite-Micro's own plan; "
              f"activations {arena['offline_plan_head_bytes']:,} B, lower bound "
              f"{arena['lower_bound_head_bytes']:,} B")
    if result.verification is not None:
        check = result.verification
        print(f"TFLite-Micro vs Keras: argmax agreement {check.argmax_agreement:.2%}, "
              f"max difference {check.max_lsb_difference:.2f} LSB")


def _verify(args) -> None:
    from tflw.export import verify

    reference = None
    if args.reference:
        from tflw.model_file import load_model

        reference = load_model(args.reference)
    result = verify(args.model, _load_inputs(args.inputs), reference=reference, progress=True)
    print(f"ran {len(result.outputs[0])} samples in TFLite-Micro; arena {result.arena_bytes:,} B")
    if reference is not None:
        print(f"argmax agreement {result.argmax_agreement:.2%}, "
              f"max difference {result.max_lsb_difference:.2f} LSB")


def _report(args) -> None:
    from tflw.analysis import analyze

    analysis = analyze(args.model, representative_data=_load_inputs(args.data), board=args.board)
    print(analysis)
    if args.out:
        from tflw.analysis import write_report

        print(f"wrote {write_report(analysis, args.out)}")
    if args.board:
        analysis.check_fits()


def _fit_data(path: str) -> tuple:
    """(train, validation) from an .npz with x_train/y_train and x_val/y_val (or
    x_test/y_test); without either pair, the last tenth of the training data."""
    try:
        data = dict(np.load(path))
    except (OSError, ValueError) as error:
        raise TflwError(f"cannot read '{path}' ({error}): give an .npz with x_train and "
                        "y_train (and x_val, y_val)") from error
    if not {"x_train", "y_train"} <= set(data):
        raise TflwError(f"'{path}' holds {sorted(data)}: it needs x_train and y_train "
                        "(and x_val, y_val for the held-out data)")
    x, y = data["x_train"], data["y_train"]
    for held in ("val", "test"):
        if f"x_{held}" in data and f"y_{held}" in data:
            return (x, y), (data[f"x_{held}"], data[f"y_{held}"])
    cut = len(x) - max(len(x) // 10, 1)
    return (x[:cut], y[:cut]), (x[cut:], y[cut:])


def _fit(args) -> None:
    from tflw.search import fit_board

    train, validation = _fit_data(args.data)
    fit = fit_board(args.model, args.board, train, validation, decode=args.decode,
                    max_flash=args.max_flash, max_arena=args.max_arena, epochs=args.epochs,
                    candidates=args.candidates, out_dir=args.out, seed=args.seed, progress=True)
    print(fit.summary())
    print(f"trials: {fit.results_path}; Pareto plot: {fit.pareto_path}")


def _firmware_check(args) -> None:
    import json

    from tflw.firmware import check_firmware

    check = check_firmware(args.out_dir, args.tflm, cmsis_nn=args.cmsis_nn, target=args.target,
                           inputs=_load_inputs(args.inputs), samples=args.samples,
                           model=args.model)
    print(check.sketch_output)
    print(f"{check.target}, {check.kernels} kernels: {check.identical_samples} of {check.samples} "
          f"samples bit-identical to the Python interpreter (largest difference "
          f"{check.max_lsb_difference} LSB)")
    print(f"arena: {check.arena_used_bytes:,} B used on {check.target} "
          f"({check.python_arena_bytes:,} B measured by export in the Python interpreter)")
    if check.arena_parts:
        print("arena parts: " + ", ".join(f"{part} {size:,} B"
                                          for part, size in check.arena_parts.items()))
    if check.flash:
        print("flash: " + ", ".join(f"{part} {size:,} B" for part, size in check.flash.items()))
    for op in check.op_differences or []:
        if op["differing_values"]:
            start = "starts here" if op["inputs_identical"] else "carried from an earlier op"
            print(f"  op {op['position']} {op['op']}: {op['differing_values']} values differ "
                  f"from the reference kernels, up to {op['max_lsb_difference']} LSB ({start})")
    if args.write_arena:
        from tflw.firmware import record_arena

        print(f"kTensorArenaSize = {record_arena(args.out_dir, check)} in the sketch, from "
              f"the {check.target} measurement")
    if args.json:
        with open(args.json, "w") as stream:
            json.dump(check.as_dict(), stream, indent=2)


def parser() -> argparse.ArgumentParser:
    from tflw.boards import BOARDS

    boards = ", ".join(BOARDS)
    main = argparse.ArgumentParser(
        prog="tflw",
        description="Take a Keras model onto a microcontroller: int8 QAT, export to a "
        "fully-integer .tflite checked in TFLite-Micro, C array and Arduino sketch.",
    )
    main.add_argument("--verbose", action="store_true", help="show TensorFlow's own logging "
                      "(by default it goes to a temporary file, named if the command fails)")
    commands = main.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="train, quantize, export and verify a CNN on "
                               "bundled MNIST digits (a few minutes on a CPU)")
    demo.add_argument("--out", default="tflw-demo", help="output folder (default: tflw-demo)")
    demo.add_argument("--epochs", type=int, default=12, help="float training epochs")
    demo.add_argument("--qat-epochs", type=int, default=3, help="QAT fine-tuning epochs")
    demo.set_defaults(run=_demo)

    export = commands.add_parser("export", help="convert a .keras model and write firmware")
    export.add_argument("model", help="a .keras file (tflw QAT model, or float model + --data)")
    export.add_argument("out", help="output folder")
    export.add_argument("--data", help=".npy of typical float inputs (an .npz with one array "
                        "per input name for several): required for a float model "
                        "(post-training quantization), also used to verify")
    export.add_argument("--weight-bits", type=int, choices=range(2, 9), metavar="{2..8}",
                        help="quantize a float model with tflw.ptq instead of the converter's "
                        "PTQ, on --data, no labels: MSE ranges and bias correction, below 8 "
                        "bits AdaRound (first, last and depthwise layers stay 8-bit)")
    export.add_argument("--name", help="sketch and C identifier name (default: model name)")
    export.add_argument("--force", action="store_true", help="replace a non-empty output folder")
    export.add_argument("--board", help=f"fail unless the model fits this board ({boards})")
    export.add_argument("--compress", choices=("auto", "always", "never"), default="auto",
                        help="write model_compressed.tflite (LUT-compressed low-bit weights): "
                        "auto = only where it saves more flash than DECODE's code adds")
    export.add_argument("--dense", choices=("auto", "per-tensor", "per-channel"), default="auto",
                        help="a float model's Dense weights: one scale per layer or per output "
                        "channel; auto = per-channel only where it cuts the error by 10%%")
    export.add_argument("--default-arena", action="store_true",
                        help="leave the arena to TFLite-Micro's own planner (no offline plan "
                        "or channel splits)")
    export.set_defaults(run=_export)

    check = commands.add_parser("verify", help="run a .tflite in TFLite-Micro on inputs")
    check.add_argument("model", help="a .tflite file")
    check.add_argument("inputs", help=".npy of float inputs, sample axis first (.npz: one "
                       "array per input, np.savez order)")
    check.add_argument("--reference", help=".keras model to compare with (parity in LSBs)")
    check.set_defaults(run=_verify)

    report = commands.add_parser("report", help="per-op parameters, MACs, bytes and the "
                                 "measured arena of a .keras or .tflite model")
    report.add_argument("model", help="a .keras or .tflite file")
    report.add_argument("--data", help=".npy of typical float inputs (.npz: one per input "
                        "name) to calibrate a float model (sizes do not depend on it)")
    report.add_argument("--board", help=f"check the budgets of this board ({boards}); "
                        "exit 1 if the model does not fit")
    report.add_argument("--out", help="folder for report.md, analysis.json and layers.png "
                        "(needs matplotlib)")
    report.set_defaults(run=_report)

    fit = commands.add_parser("fit", help="search weight bits and channels per layer until a "
                              "trained float model fits a board, verified in TFLite-Micro")
    fit.add_argument("model", help="a trained float .keras model that outputs logits")
    fit.add_argument("--board", required=True, help=f"the target board ({boards})")
    fit.add_argument("--data", required=True, help=".npz with x_train, y_train (integer "
                     "labels) and x_val, y_val (default: the last tenth of the training data)")
    fit.add_argument("--decode", action="store_true", help="the runtime has TFLite-Micro's "
                     "DECODE op: allow 4- and 2-bit layers, LUT-compressed (not the Arduino "
                     "libraries)")
    fit.add_argument("--max-flash", type=int, help="a tighter model flash budget, bytes")
    fit.add_argument("--max-arena", type=int, help="a tighter tensor arena budget, bytes")
    fit.add_argument("--epochs", type=int, default=2, help="fine-tuning epochs per candidate")
    fit.add_argument("--candidates", type=int, default=2, help="configurations fine-tuned")
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("--out", default="tflw-fit", help="output folder (default: tflw-fit)")
    fit.set_defaults(run=_fit)

    firmware = commands.add_parser("firmware", help="build and run exported firmware")
    firmware_commands = firmware.add_subparsers(dest="firmware_command", required=True)
    fcheck = firmware_commands.add_parser(
        "check", help="build the exported sketch against a TFLite-Micro tree, run it on the "
        "host or qemu's Cortex-M4, compare with the Python interpreter bit for bit")
    fcheck.add_argument("out_dir", help="the folder tflw export wrote")
    fcheck.add_argument("--tflm", required=True, help="a TFLite-Micro source tree (its "
                        "third_party_downloads done once)")
    fcheck.add_argument("--cmsis-nn", help="a CMSIS-NN source tree: use its kernels")
    fcheck.add_argument("--target", choices=("host", "cortex-m4"), default="host",
                        help="host (g++) or cortex-m4 (arm-none-eabi-g++ under qemu-system-arm)")
    fcheck.add_argument("--inputs", help=".npy of float inputs (.npz: one array per input, "
                        "np.savez order; default: random codes)")
    fcheck.add_argument("--samples", type=int, default=50, help="inputs to run (default: 50)")
    fcheck.add_argument("--model", choices=("int8", "compressed"), default="int8",
                        help="the sketch's model, or model_compressed.tflite with DECODE")
    fcheck.add_argument("--json", help="also write the result to this JSON file")
    fcheck.add_argument("--write-arena", action="store_true",
                        help="set the sketch's kTensorArenaSize to the arena measured here")
    fcheck.set_defaults(run=_firmware_check)
    return main


@contextlib.contextmanager
def _native_logs_aside(command: str) -> Iterator[None]:
    """Writes what native code prints on file descriptor 2 (TensorFlow's and absl's C++
    logging, the converter's notices) to a temporary file instead of the terminal, and
    TensorFlow's and absl's Python logging below ERROR nowhere; Python's own stderr (tflw's
    warnings, tracebacks) stays on the terminal. The file is kept and named when the
    command fails and it holds anything."""
    sys.stderr.flush()
    try:
        python_on_fd2 = sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):  # a caller already captures sys.stderr
        python_on_fd2 = False
    terminal = os.dup(2)
    log = tempfile.NamedTemporaryFile(prefix=f"tflw-{command}-", suffix=".log", delete=False)
    os.dup2(log.fileno(), 2)
    python_stderr = sys.stderr
    if python_on_fd2:
        sys.stderr = os.fdopen(terminal, "w", buffering=1)
    loggers = [logging.getLogger(name) for name in ("absl", "tensorflow")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    failed = True
    try:
        yield
        failed = False
    finally:
        sys.stderr.flush()
        os.dup2(terminal, 2)
        if python_on_fd2:
            sys.stderr.close()
            sys.stderr = python_stderr
        else:
            os.close(terminal)
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
        log.close()
        if failed and os.path.getsize(log.name):
            print(f"TensorFlow's own log of this run: {log.name}", file=sys.stderr)
        else:  # a success, or a failure whose native code wrote nothing: nothing to read
            os.unlink(log.name)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parser().parse_args(argv)
    logs = contextlib.nullcontext() if args.verbose else _native_logs_aside(args.command)
    try:
        with logs:
            args.run(args)
    except TflwError as error:
        print(f"tflw {args.command}: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    return 0
