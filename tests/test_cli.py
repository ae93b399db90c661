import json
import os
import re
import subprocess
import sys
import tempfile

import numpy as np

import tflw
from tests.conftest import all_layers_model, randomize_biases
from tests.export.sketch_compiler import assert_compiles
from tflw.cli import main


def test_help_names_every_command_without_importing_tensorflow():
    script = ("import sys\nfrom tflw.cli import main\ntry:\n    main(['--help'])\n"
              "except SystemExit:\n    pass\n"
              "print('imported:', [m for m in ('tensorflow', 'keras', 'jax', 'torch') "
              "if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    for command in ("demo", "export", "verify", "report", "fit", "firmware"):
        assert command in out.stdout
    assert "imported: []" in out.stdout  # what makes --help take 0.1 s instead of 20


def test_export_and_verify_from_the_command_line(tmp_path, pixels, capsys):
    qat = tflw.quantize_model(all_layers_model(), calibration_data=pixels)
    qat.save(tmp_path / "qat.keras")
    np.save(tmp_path / "x.npy", pixels[:20])
    assert main(["export", str(tmp_path / "qat.keras"), str(tmp_path / "out"),
                 "--data", str(tmp_path / "x.npy")]) == 0
    printed = capsys.readouterr()
    assert "tflw: converting" in printed.err
    assert "running 20 sample(s) in TFLite-Micro" in printed.err
    assert "20/20" in printed.out  # the samples' bar
    assert main(["verify", str(tmp_path / "out" / "model.tflite"), str(tmp_path / "x.npy"),
                 "--reference", str(tmp_path / "qat.keras")]) == 0
    assert "argmax agreement" in capsys.readouterr().out
    assert main(["export", str(tmp_path / "qat.keras"), str(tmp_path / "out")]) == 1


def test_a_float_model_is_quantized_by_tflw_ptq_with_weight_bits(tmp_path, pixels, capsys):
    model = randomize_biases(all_layers_model())
    model.save(tmp_path / "float.keras")
    np.save(tmp_path / "x.npy", pixels[:64])
    assert main(["export", str(tmp_path / "float.keras"), str(tmp_path / "out"),
                 "--data", str(tmp_path / "x.npy"), "--weight-bits", "8"]) == 0
    assert "without training (tflw.ptq, 8-bit weights" in capsys.readouterr().err
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["quantization"].startswith("tflw quantized layers")
    assert report["verification"]["max_lsb_difference"] <= 1.001
    # the converter's PTQ of the same model, for the flash: never more
    assert main(["export", str(tmp_path / "float.keras"), str(tmp_path / "converter"),
                 "--data", str(tmp_path / "x.npy")]) == 0
    converter = json.loads((tmp_path / "converter" / "report.json").read_text())
    assert report["flatbuffer_bytes"] <= converter["flatbuffer_bytes"]
    qat = tflw.quantize_model(model, calibration_data=pixels)
    qat.save(tmp_path / "qat.keras")
    assert main(["export", str(tmp_path / "qat.keras"), str(tmp_path / "again"),
                 "--data", str(tmp_path / "x.npy"), "--weight-bits", "4"]) == 1
    assert "already quantized" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "float.keras"), str(tmp_path / "again"),
                 "--weight-bits", "4"]) == 1
    assert "give them with --data" in capsys.readouterr().err
    assert not (tmp_path / "again").exists()


def test_report_prints_per_op_costs_and_the_board_budget(tmp_path, pixels, capsys):
    qat = tflw.quantize_model(all_layers_model(), calibration_data=pixels)
    qat.save(tmp_path / "qat.keras")
    assert main(["report", str(tmp_path / "qat.keras"), "--board", "nano33ble",
                 "--out", str(tmp_path / "report")]) == 0
    printed = capsys.readouterr().out
    assert "DEPTHWISE_CONV_2D" in printed and "Arduino Nano 33 BLE Sense" in printed
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "layers.png" in markdown and "DEPTHWISE_CONV_2D" in markdown
    assert (tmp_path / "report" / "layers.png").stat().st_size > 1000
    assert main(["report", str(tmp_path / "qat.keras"), "--board", "uno"]) == 1


def test_firmware_check_names_what_is_missing(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    assert main(["firmware", "check", str(tmp_path), "--tflm", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "ModelFileError" in err  # no export in that folder
    # native code wrote nothing: no log file named, none left behind
    assert "own log" not in err and not list((tmp_path / "tmp").iterdir())


def test_the_demo_prints_only_its_own_lines_and_writes_firmware_that_compiles(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_CPP")}
    run = subprocess.run([sys.executable, "-m", "tflw", "demo", "--out", str(tmp_path / "demo"),
                          "--epochs", "1", "--qat-epochs", "1"],
                         capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "TFLite-Micro" in run.stdout
    # TensorFlow's C++ and absl logging ("I0000 00:00:..." lines, absl's warnings) stay out
    assert not re.search(r"^[IWEF]\d{4} |absl|cuda", run.stdout + run.stderr, re.M), run.stderr
    # the demo's sketch once held `0f` / `1f` literals: 595 errors on every compiler
    assert_compiles(tmp_path / "demo", tmp_path)


def test_every_public_name_loads_on_first_use():
    script = ("import sys, tflw\nassert 'tensorflow' not in sys.modules\n"
              "missing = [n for n in tflw.__all__ if getattr(tflw, n, None) is None]\n"
              "listed = set(tflw._PUBLIC) | set(tflw._SUBMODULES) | {'__version__'}\n"
              "import tflw.export.verify, tflw.ptq.adaround  # subpackages named like functions\n"
              "assert tflw.analysis.keras_costs and tflw.distillation.teacher_logits\n"
              "print(missing, sorted(listed ^ set(tflw.__all__)), callable(tflw.export), "
              "callable(tflw.ptq))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.stdout.split("\n")[-2] == "[] [] True True", out.stderr[-2000:]
