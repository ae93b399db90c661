import json

import numpy as np
import pytest

import tflw
from tflw.cli import main
from tflw.demo import build_demo_model
from tflw.errors import ModelTooLargeError

# One fine-tuning rate: choosing among rates is tests/search/test_candidate.py's.
SETTINGS = dict(board="nano33ble", epochs=1, candidates=1, seed=0, learning_rates=(1e-2,))
WIDTH = dict(make=lambda width, resolution: build_demo_model(
    width=max(1, round(8 * width)), input_shape=tflw.search.scaled_shape((28, 28, 1), resolution)),
    widths=(0.5, 0.25), float_epochs=1)


@pytest.fixture(scope="module")
def task(trained_demo_w8, mnist):
    (x, y), (x_val, y_val) = mnist
    return trained_demo_w8, (x[:1500], y[:1500]), (x_val[:300], y_val[:300])


@pytest.fixture(scope="module")
def fitted(task, tmp_path_factory):
    model, train, val = task
    out_dir = tmp_path_factory.mktemp("fit") / "fit"
    reference = tflw.export(tflw.quantize_model(model, calibration_data=train[0][:256]),
                            out_dir.parent / "int8")
    budget = int(0.7 * reference.flatbuffer_bytes)
    fit = tflw.fit_board(model, train_data=train, validation_data=val, max_flash=budget,
                         out_dir=out_dir, **SETTINGS, **WIDTH)
    return fit, budget, reference


def test_the_chosen_model_fits_in_measured_bytes(fitted, task):
    fit, budget, reference = fitted
    _, _, (x_val, y_val) = task
    measured = fit.trial.measured
    assert measured.runtime == "int8" and measured.flash_bytes <= budget
    assert measured.flash_bytes == fit.export.tflite_path.stat().st_size
    assert measured.arena_bytes == fit.export.arena_bytes <= fit.budgets["arena"]
    assert fit.export.verification.max_lsb_difference <= 1.001
    assert fit.model.count_params() < reference.info.parameter_count * 1.5
    assert fit.trials[0].name == "int8" and fit.trials[0].measured.flash_bytes > budget
    names = [t.name for t in fit.trials]
    assert names[1].startswith("uniform-keep-") and names[-1].startswith("width-")
    assert any(name.startswith("trial-") for name in names)  # the solver's own
    fitting = [t for t in fit.trials[1:] if t.fits]
    assert fit.trial is max(fitting, key=lambda t: t.measured.accuracy)
    for trial in fit.trials[1:]:  # the calibrated estimate steers well
        assert trial.estimate["flash"] == pytest.approx(trial.measured.flash_bytes, rel=0.1)
        assert trial.estimate["arena"] == pytest.approx(trial.measured.arena_bytes, rel=0.1)
    outputs = tflw.verify(fit.export.tflite_path, x_val).outputs[0]
    assert fit.trial.measured.accuracy == np.mean(outputs.argmax(-1) == y_val)
    assert fit.pareto_path.stat().st_size > 1000


def test_fit_json_records_every_trial_and_a_rerun_resumes_from_it(fitted, task):
    fit, budget, _ = fitted
    saved = json.loads(fit.results_path.read_text())
    assert [t["name"] for t in saved["trials"]] == [t.name for t in fit.trials]
    assert len(saved["sensitivity"]["bits"]) == 5
    model, train, val = task
    trial_dirs = sorted(p.name for p in fit.out_dir.iterdir())
    again = tflw.fit_board(model, train_data=train, validation_data=val, max_flash=budget,
                           out_dir=fit.out_dir, **SETTINGS, **WIDTH)
    assert sorted(p.name for p in fit.out_dir.iterdir()) == trial_dirs  # nothing retrained
    assert again.trial.name == fit.trial.name
    assert again.trial.measured.accuracy == fit.trial.measured.accuracy


def test_a_lower_resolution_is_tried_where_it_buys_width_and_is_measured_on_resized_inputs(
        task, tmp_path):
    model, train, val = task
    reference = tflw.export(tflw.quantize_model(model, calibration_data=train[0][:256]),
                            tmp_path / "int8")
    budget = int(0.8 * reference.arena_bytes)  # width 0.5 at 28x28, or 1.0 at 21x21
    fit = tflw.fit_board(model, train_data=train, validation_data=val, max_arena=budget,
                         out_dir=tmp_path / "fit", keeps=(1.0, 0.5),
                         **{**SETTINGS, "candidates": 0}, **WIDTH)
    scaled = {t.name: t for t in fit.trials if t.name.startswith("width-")}
    assert set(scaled) == {"width-0.5", "width-1-res-0.75"}
    trial = scaled["width-1-res-0.75"]
    assert trial.resolution == 0.75 and trial.measured.arena_bytes <= budget
    tflite = fit.out_dir / trial.name / "model.tflite"
    x_small = tflw.search.resize_inputs(val[0], (21, 21, 1))
    outputs = tflw.verify(tflite, x_small).outputs[0]
    assert trial.measured.accuracy == np.mean(outputs.argmax(-1) == val[1])
    assert fit.trial.measured.arena_bytes <= budget
    if fit.trial is trial:
        assert fit.model.input_shape == (None, 21, 21, 1) and "resize" in fit.summary()


def test_the_command_line_names_what_its_data_file_lacks(task, tmp_path, capsys):
    model, train, _ = task
    model.save(tmp_path / "float.keras")
    np.savez(tmp_path / "data.npz", x=train[0], y=train[1])
    code = main(["fit", str(tmp_path / "float.keras"), "--board", "nano33ble", "--data",
                 str(tmp_path / "data.npz")])
    assert code == 1 and "needs x_train and y_train" in capsys.readouterr().err


def test_an_impossible_budget_is_refused_before_any_work(task, tmp_path):
    model, train, val = task
    with pytest.raises(ModelTooLargeError, match="no configuration fits.*smallest") as raised:
        tflw.fit_board(model, train_data=train, validation_data=val, max_flash=500,
                       out_dir=tmp_path / "fit", **SETTINGS)
    assert "budget 500 B" in str(raised.value) and "logits" in str(raised.value)
    assert not (tmp_path / "fit").exists()


def test_a_quantization_aware_model_is_refused(task, tmp_path):
    model, train, val = task
    with pytest.raises(tflw.errors.UnsupportedModelError, match="float"):
        tflw.fit_board(tflw.quantize_model(model), train_data=train, validation_data=val,
                       out_dir=tmp_path / "fit", **SETTINGS)


def _two_worker_fit(task, tmp_path, executor):
    model, (x, y), val = task
    return tflw.fit_board(model, train_data=(x[:600], y[:600]), validation_data=val,
                          max_flash=6000,
                          out_dir=tmp_path / "fit", executor=executor, parallel=2,
                          **{**SETTINGS, "candidates": 2})


def _assert_two_candidates_trained_apart(fit):
    trained = [t for t in fit.trials[1:] if t.measured is not None]
    assert len(trained) >= 2 and len({str(t.config) for t in trained}) == len(trained)
    assert fit.trial.fits and fit.trial.measured.flash_bytes <= 6000
    assert (fit.out_dir / "float.keras").is_file()  # what the workers loaded
    for trial in trained:
        assert (fit.out_dir / trial.name / "qat.keras").is_file()


def test_candidates_train_in_two_local_worker_processes(task, tmp_path):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        fit = _two_worker_fit(task, tmp_path, pool)
    _assert_two_candidates_trained_apart(fit)


def test_candidates_train_as_ray_tasks_on_two_local_workers(task, tmp_path):
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        fit = _two_worker_fit(task, tmp_path, tflw.search.RayExecutor())
    finally:
        ray.shutdown()
    _assert_two_candidates_trained_apart(fit)
