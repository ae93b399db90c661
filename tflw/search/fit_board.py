"""`fit_board`: search weight bits and channels per layer until a model fits a board,
fine-tune the best configurations with QAT distilled from the float model, and prove the
result in TFLite-Micro.

```python
fit = tflw.fit_board(model, "nano33ble", (x_train, y_train), (x_val, y_val), decode=True)
print(fit.summary())             # the chosen configuration, measured bytes and accuracy
fit.export.tflite_path           # exported and verified like every tflw export
fit.trials                       # every configuration tried, estimated and measured
```

The search: one measured int8 export calibrates the byte estimates; the loss increase of
each single change (a layer at 4 or 2 bits, a channel group at 3/4, 1/2, 1/4) is measured
on held-out data; an exact integer program picks the set of changes of least summed loss
within the budgets (`tflw.search.solver`); the `candidates` best configurations, and the
uniform ones a user would try first (one keep ratio everywhere; one bit width
everywhere), are fine-tuned, exported and measured, and the most accurate one that fits
in measured bytes is returned. A candidate that misses its budget in measured bytes shrinks the budget
the solver sees by the miss, and the search goes on.

References:
    Dong et al., "HAWQ-V3: Dyadic Neural Network Quantization", ICML 2021 (integer
    program over per-layer bit widths). Wang et al., "HAQ", CVPR 2019. Yang et al.,
    "NetAdapt", ECCV 2018 (per-layer channel budgets, measured cost).
"""

import hashlib
import json
import os
import sys
import time
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple, Union

import keras
import numpy as np

from tflw import boards
from tflw.analysis.plots import plot_pareto
from tflw.distillation.distiller import teacher_logits
from tflw.errors import ModelTooLargeError, UnsupportedModelError
from tflw.export.convert import is_quantization_aware
from tflw.export.export import ExportResult
from tflw.model_file import load_model
from tflw.export.lut import DECODE_CODE_BYTES
from tflw.export.preflight import check_model
from tflw.model_data import one_input_array
from tflw.search.candidate import (CandidateJob, Measured, export_candidate,
                                   measure_candidate, run_candidate, train_candidate)
from tflw.search.problem import Config, Problem, build_problem, cost_model, unchanged
from tflw.search.resolution import resize_inputs, scaled_shape
from tflw.search.sensitivity import measure_sensitivity
from tflw.search.solver import Term
from tflw.search.space import SearchSpace, read_space

SENSITIVITY_SAMPLES = 1000
RECALIBRATION_SAMPLES = 512
# How far under a missed budget the next solve aims, beyond the measured miss itself.
RETRY_MARGIN = 0.98


@dataclass
class Trial:
    """One configuration: estimated by the cost model, measured once trained and exported."""

    name: str
    config: Config
    estimate: dict
    measured: Optional[Measured] = None
    fits: Optional[bool] = None
    seconds: float = 0.0
    resolution: float = 1.0

    def to_dict(self) -> dict:
        return {"name": self.name, "config": self.config.to_dict(), "estimate": self.estimate,
                "measured": None if self.measured is None else vars(self.measured),
                "fits": self.fits, "seconds": self.seconds, "resolution": self.resolution}

    @staticmethod
    def from_dict(data: dict) -> "Trial":
        measured = None if data["measured"] is None else Measured(**data["measured"])
        return Trial(data["name"], Config.from_dict(data["config"]), data["estimate"], measured,
                     data["fits"], data["seconds"], data.get("resolution", 1.0))


@dataclass
class FitResult:
    """What `fit_board` chose, and everything it tried.

    Attributes:
        model: the chosen QAT model (Keras; save it, fine-tune it further, export it again).
        export: its `ExportResult` (model.tflite, C array, sketch, report.json).
        trial: the chosen `Trial`; trials: every trial, the int8 reference first.
        budgets: {"flash": B, "arena": B, "macs": n or None} searched for.
        out_dir: where trials, `fit.json` and `pareto.png` are.
        wall_seconds: the search's wall time, this call (a resumed search counts anew).
    """

    model: keras.Model
    export: ExportResult
    trial: Trial
    trials: List[Trial]
    budgets: dict
    out_dir: Path
    wall_seconds: float
    results_path: Path = field(default=Path())
    pareto_path: Path = field(default=Path())

    def summary(self) -> str:
        """One screen: budgets, the chosen configuration, and every trial's numbers."""
        m = self.trial.measured
        low = {n: b for n, b in self.trial.config.bits.items() if b < 8}
        cut = {g: k for g, k in self.trial.config.keep.items() if k < 1.0}
        lines = [f"fit_board: {self.trial.name} fits "
                 f"(flash {m.flash_bytes:,} / {self.budgets['flash']:,} B, "
                 f"arena {m.arena_bytes:,} / {self.budgets['arena']:,} B, {m.runtime}), "
                 f"TFLite-Micro accuracy {m.accuracy:.2%}",
                 f"  low-bit layers: {low or 'none'}",
                 f"  channels kept:  {cut or 'all'}",
                 *([] if self.trial.resolution == 1.0 else [
                     f"  inputs:         {tuple(self.model.input_shape[1:])} (resolution "
                     f"{self.trial.resolution:g}): resize them on the device as "
                     "tflw.search.resize_inputs does"]),
                 f"  exported to {self.export.out_dir}; search took {self.wall_seconds:.0f} s",
                 "  trial            flash B    arena B   accuracy  fits  rate"]
        for trial in self.trials:
            t = trial.measured
            if t is None:
                continue
            lines.append(f"  {trial.name:<14} {t.flash_bytes:>9,} {t.arena_bytes:>10,} "
                         f"{t.accuracy:>9.2%}  {'yes' if trial.fits else 'no ':<4}"
                         f"{'' if t.learning_rate is None else f'{t.learning_rate:g}'}")
        return "\n".join(lines)


def _say(progress: bool, message: str) -> None:
    if progress:
        print(f"tflw fit: {message}", file=sys.stderr, flush=True)


def _budgets(board: boards.Board, max_flash, max_arena, max_macs) -> dict:
    flash = board.model_flash_budget if max_flash is None else min(max_flash, board.model_flash_budget)
    arena = board.arena_budget if max_arena is None else min(max_arena, board.arena_budget)
    return {"flash": int(flash), "arena": int(arena), "macs": max_macs}


def _smallest(space: SearchSpace) -> Config:
    return Config({l.name: min(space.bits) for l in space.layers},
                  {g: min(space.keeps) for g in space.groups})


def _nothing_fits(problem: Problem, budgets: dict, calibrated: bool) -> ModelTooLargeError:
    space, smallest = problem.space, _smallest(problem.space)
    estimate = problem.estimate(smallest)
    layers = sorted(space.layers, key=lambda l: -l.flash(smallest.bits[l.name],
                                                         smallest.keep.get(l.in_group, 1.0),
                                                         smallest.keep.get(l.out_group, 1.0)))
    tensors = sorted(space.activations, key=lambda a: -a.nbytes)
    basis = "measured int8 export and estimates" if calibrated else "estimates, before converting"
    return ModelTooLargeError(
        f"no configuration fits: the smallest this search reaches (every layer at "
        f"{min(space.bits)} bits, every prunable channel group at {min(space.keeps):g}) takes "
        f"about {estimate['flash']:,.0f} B of flash (budget {budgets['flash']:,} B) and "
        f"{estimate['arena']:,.0f} B of arena (budget {budgets['arena']:,} B) ({basis}). "
        f"Most flash: {', '.join(l.name for l in layers[:3])}; largest activations: "
        f"{', '.join(f'{a.producer} ({a.nbytes:,} B)' for a in tensors[:3])}. "
        "Allow fewer bits (decode=True, bits=(8, 4, 2, 1)), lower keep ratios, a smaller input, "
        "or a board with more memory.")


def _exclusions(problem: Problem, tried: Sequence[Config]) -> List[Term]:
    """One budget per tried configuration that forbids choosing it again (a no-good cut)."""
    terms = []
    for index, config in enumerate(tried):
        choice = problem.choice(config)
        for knob, option in choice.items():
            table = np.zeros(problem.options[knob])
            table[option] = 1.0
            terms.append(Term((knob,), {f"exclude:{index}": table}))
    return terms


def _shipped_estimate(problem: Problem, config: Config) -> dict:
    """`problem.estimate`, with DECODE's code in the flash where a layer is below 8 bits."""
    estimate = problem.estimate(config)
    if min(config.bits.values(), default=8) < 8:
        estimate["flash"] += DECODE_CODE_BYTES
    return estimate


def _uniform_seeds(problem: Problem, budgets: dict, decode: bool) -> List[Tuple[str, Config]]:
    """The uniform configurations a user would try first, each the least compressed one
    estimated to fit: one keep ratio for every channel group, and (with DECODE) one bit
    width for every layer. They compete with the solver's configurations."""
    space, seeds = problem.space, []

    def fits(config: Config) -> bool:
        estimate = _shipped_estimate(problem, config)
        return estimate["flash"] <= budgets["flash"] and estimate["arena"] <= budgets["arena"]

    keep = next((k for k in sorted(space.keeps, reverse=True) if fits(Config(
        {l.name: 8 for l in space.layers}, {g: k for g in space.groups}))), None)
    if keep is not None and keep < 1.0 and space.groups:
        seeds.append((f"uniform-keep-{keep:g}", Config({l.name: 8 for l in space.layers},
                                                       {g: keep for g in space.groups})))
    bits = next((b for b in sorted(space.bits, reverse=True) if b < 8 and fits(Config(
        {l.name: b for l in space.layers}, {g: 1.0 for g in space.groups}))), None)
    if decode and bits is not None:
        seeds.append((f"uniform-bits-{bits}", Config({l.name: bits for l in space.layers},
                                                     {g: 1.0 for g in space.groups})))
    return seeds


def _int8_only(problem: Problem) -> List[Term]:
    """A resource counting the layers below 8 bits, to budget at 0 (no DECODE needed)."""
    bits = np.array([float(b < 8) for b in problem.space.bits])
    return [Term((f"bits:{l.name}",), {"low_bits": bits}) for l in problem.space.layers]


def _solve(problem: Problem, budgets: dict, scale: dict, tried: Sequence[Config],
           decode: bool) -> Optional[Config]:
    """The best untried configuration: with DECODE (its code counted as flash) or at int8
    throughout without it, whichever has the smaller estimated loss."""
    extra = _exclusions(problem, tried) + _int8_only(problem)
    # Each exclusion allows at most all-but-one of that configuration's options.
    exclusions = {f"exclude:{i}": len(problem.options) - 1 for i in range(len(tried))}
    found = []
    for with_decode in ((False, True) if decode else (False,)):
        flash = budgets["flash"] * scale["flash"] - (DECODE_CODE_BYTES if with_decode else 0)
        limits = {**exclusions, "low_bits": len(problem.space.layers) if with_decode else 0}
        config = problem.solve(flash, budgets["arena"] * scale["arena"], budgets["macs"],
                               extra_terms=extra, extra_budgets=limits)
        if config is not None:
            found.append(config)
    return min(found, key=lambda c: problem.estimate(c)["loss"], default=None)


def _scalings(make, widths: Sequence[float], resolutions: Sequence[float], problem: Problem,
              budgets: dict, input_shape: tuple) -> List[Tuple[float, float, list]]:
    """(width, resolution, narrower widths to fall back on) for every resolution whose
    widest model estimated to fit at int8 is wider than any at a higher resolution: a
    lower resolution earns a trial only where it buys width (EfficientNet's compound
    scaling, searched instead of set by its coefficients)."""
    found: List[Tuple[float, float, list]] = []
    for resolution in sorted(resolutions, reverse=True):
        options = sorted(set(widths) | ({1.0} if resolution < 1.0 else set()), reverse=True)
        for index, width in enumerate(options):
            narrow = make(width, resolution)
            expected = scaled_shape(input_shape, resolution)
            if tuple(narrow.input_shape[1:]) != expected:
                raise UnsupportedModelError(
                    f"make({width:g}, {resolution:g}) takes inputs of shape "
                    f"{tuple(narrow.input_shape[1:])}; at resolution {resolution:g} the "
                    f"model's {input_shape} should become {expected} (every axis but the "
                    "channels scaled, rounded)")
            space = read_space(narrow)
            estimate = cost_model(space, calibrated_by=problem).estimate(unchanged(space))
            if estimate["flash"] <= budgets["flash"] and estimate["arena"] <= budgets["arena"]:
                if all(width > w for w, _, _ in found):
                    found.append((width, resolution, options[index + 1:]))
                break
    return found


def _scaled_trials(make, widths: Sequence[float], resolutions: Sequence[float],
                   problem: Problem, budgets: dict, float_epochs: int, job: CandidateJob,
                   progress: bool) -> List[Trial]:
    """For each (width, resolution) of `_scalings`: `make(width, resolution)` trained from
    scratch for `float_epochs` on inputs resized to it, then fine-tuned as `job` says;
    narrower ones while it misses in measured bytes. Returns the trials that fit."""
    found = []
    input_shape = tuple(job.validation[0].shape[1:])
    for first, resolution, narrower in _scalings(make, widths, resolutions, problem, budgets,
                                                 input_shape):
        shape = scaled_shape(input_shape, resolution)
        train = (resize_inputs(job.train[0], shape), job.train[1])
        validation = (resize_inputs(job.validation[0], shape), job.validation[1])
        for width in [first] + narrower:
            name = f"width-{width:g}" + ("" if resolution == 1.0 else f"-res-{resolution:g}")
            _say(progress, f"{name}: training from scratch ({float_epochs} epochs"
                           f"{'' if resolution == 1.0 else f', inputs {shape}'}), then fine-tuning")
            begin = time.perf_counter()
            keras.utils.set_random_seed(job.seed)
            student = make(width, resolution)
            student.compile(keras.optimizers.Adam(max(job.learning_rates)),
                            loss=keras.losses.deserialize(job.loss))
            student.fit(*train, epochs=float_epochs, batch_size=job.batch_size, verbose=0)
            space = read_space(student)
            measured = run_candidate(replace(
                job, model=student, config=unchanged(space), decode=False, train=train,
                validation=validation, out_dir=str(Path(job.out_dir) / name)))
            _say(progress, f"{name}: flash {measured.flash_bytes:,} B, arena "
                           f"{measured.arena_bytes:,} B, accuracy {measured.accuracy:.2%}")
            if measured.fits(budgets):
                estimate = cost_model(space, calibrated_by=problem).estimate(unchanged(space))
                found.append(Trial(name, unchanged(space), estimate, measured, True,
                                   time.perf_counter() - begin, resolution))
                break
    return found


def _fingerprint(model: keras.Model, settings: dict) -> str:
    digest = hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode())
    for variable in model.weights:
        digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(variable)).tobytes())
    return digest.hexdigest()


def _labels(data, argument: str, model) -> Tuple[np.ndarray, np.ndarray]:
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise ValueError(f"{argument} must be (inputs, labels), e.g. (x_train, y_train)")
    x = one_input_array(data[0], argument, model, "fit_board")
    y = np.asarray(data[1])
    if len(y) != len(x):
        raise ValueError(f"{argument} has {len(x)} inputs but {len(y)} labels")
    return x, y


class _Search:
    """The trials and sensitivities of one search, written to `out_dir/fit.json` after
    every step; a search with the same model and settings resumes from it."""

    def __init__(self, out_dir: Path, key: str, model_name: str, settings: dict,
                 saved: dict):
        self.out_dir, self.key, self.model_name, self.settings = out_dir, key, model_name, settings
        self.sensitivity: Optional[dict] = saved.get("sensitivity")
        self.trials = [Trial.from_dict(t) for t in saved.get("trials", [])]
        out_dir.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def resume(out_dir: Path, model: keras.Model, settings: dict) -> "_Search":
        key = _fingerprint(model, settings)
        path = out_dir / "fit.json"
        saved = json.loads(path.read_text()) if path.is_file() else {}
        return _Search(out_dir, key, model.name, settings, saved if saved.get("key") == key else {})

    @property
    def path(self) -> Path:
        return self.out_dir / "fit.json"

    def add(self, trial: Trial) -> None:
        self.trials.append(trial)
        self.record()

    def record(self) -> None:
        results = {"key": self.key, "model": self.model_name, "settings": self.settings,
                   "sensitivity": self.sensitivity,
                   "trials": [t.to_dict() for t in self.trials]}
        staged = self.path.with_suffix(".json.tmp")
        staged.write_text(json.dumps(results, indent=2) + "\n")
        os.replace(staged, self.path)  # a killed search leaves the last complete file


def _reference_trial(model: keras.Model, zero: Problem, train: tuple, val: tuple,
                     out_dir: Path, loss: Callable) -> Trial:
    """The unchanged model at int8, exported and measured with TFLite-Micro's own arena plan:
    what calibrates the estimates."""
    begin = time.perf_counter()
    full = unchanged(zero.space)
    reference, _ = train_candidate(model, full, *train, None, loss, epochs=0)
    _, measured = measure_candidate(reference, out_dir / "int8", *val, decode=False,
                                    minimize_arena=False)
    reference.save(out_dir / "int8" / "qat.keras")
    return Trial("int8", full, zero.estimate(full), measured, None, time.perf_counter() - begin)


def _run_candidates(search: _Search, problem: Problem, budgets: dict, job: CandidateJob,
                    candidates: int, executor: Optional[Executor], parallel: int,
                    progress: bool) -> None:
    """Fine-tune and measure the uniform seeds, then the solver's configurations until
    `candidates` of them fit; a measured miss tightens the budget the solver sees."""
    scale = {"flash": 1.0, "arena": 1.0}
    # A scaled candidate's configuration names the layers of another model: not excluded here.
    tried = [t.config for t in search.trials[1:] if not t.name.startswith("width-")]
    seeds = [(name, config) for name, config in _uniform_seeds(problem, budgets, job.decode)
             if config not in tried]
    for _ in range(candidates + len(seeds) + 4):
        solved = sum(t.fits and t.name.startswith("trial-") for t in search.trials)
        if not seeds and solved >= candidates:
            break
        jobs = []
        for _ in range(parallel if executor is not None else 1):
            if seeds:
                name, config = seeds.pop(0)
            else:
                config = _solve(problem, budgets, scale, tried, job.decode)
                if config is None:
                    break
                name = f"trial-{len(search.trials) + len(jobs)}"
            tried.append(config)
            jobs.append((name, config, replace(job, config=config,
                                               out_dir=str(search.out_dir / name))))
        if not jobs:
            break
        solved_at = dict(scale)
        _say(progress, f"fine-tuning {', '.join(name for name, _, _ in jobs)} ({job.epochs} "
                       f"epochs{'' if executor is None else ', in parallel'})")
        begin = time.perf_counter()
        if executor is None:
            results = [run_candidate(job) for _, _, job in jobs]
        else:
            results = [future.result() for future in
                       [executor.submit(run_candidate, job) for _, _, job in jobs]]
        seconds = (time.perf_counter() - begin) / len(jobs)
        for (name, config, _), measured in zip(jobs, results):
            fits = measured.fits(budgets)
            search.trials.append(Trial(name, config, _shipped_estimate(problem, config),
                                       measured, fits, seconds))
            _say(progress, f"{name}: flash {measured.flash_bytes:,} B, arena "
                           f"{measured.arena_bytes:,} B, accuracy {measured.accuracy:.2%}"
                           f"{'' if fits else ' - over budget, tightening the estimate'}")
            for resource, used in (("flash", measured.flash_bytes),
                                   ("arena", measured.arena_bytes)):
                if used > budgets[resource]:
                    scale[resource] = min(scale[resource], solved_at[resource]
                                          * budgets[resource] / used * RETRY_MARGIN)
        search.record()


def _chosen(search: _Search, best: Trial, x_val: np.ndarray, decode: bool,
            minimize_arena: bool, budgets: dict, seconds: float) -> FitResult:
    """`best` exported again here, in this process (it may come from a worker or an earlier
    run; its accuracy is already measured), and the Pareto plot of every trial."""
    folder = search.out_dir / best.name
    qat = keras.saving.load_model(folder / "qat.keras")
    x_best = resize_inputs(x_val, tuple(qat.input_shape[1:]))
    export_result = export_candidate(qat, folder, x_best, decode, minimize_arena)
    qat.save(folder / "qat.keras")  # exporting empties the folder
    pareto_path = search.out_dir / "pareto.png"
    runs = [{"run": t.name, "accuracy": t.measured.accuracy, "flash_bytes": t.measured.flash_bytes,
             "arena_bytes": t.measured.arena_bytes} for t in search.trials if t.measured]
    plot_pareto(runs, pareto_path, costs=("flash_bytes", "arena_bytes"))
    return FitResult(qat, export_result, best, search.trials, budgets, search.out_dir, seconds,
                     search.path, pareto_path)


def fit_board(
    model: Union[keras.Model, str, os.PathLike],
    board: Union[str, boards.Board],
    train_data: Tuple[np.ndarray, np.ndarray],
    validation_data: Tuple[np.ndarray, np.ndarray],
    decode: bool = False,
    max_flash: Optional[int] = None,
    max_arena: Optional[int] = None,
    max_macs: Optional[int] = None,
    bits: Sequence[int] = (8, 4, 2),
    keeps: Sequence[float] = (1.0, 0.75, 0.5, 0.25),
    epochs: int = 2,
    candidates: int = 2,
    out_dir: Union[str, os.PathLike] = "tflw-fit",
    loss: Optional[Callable] = None,
    batch_size: int = 64,
    learning_rates: Sequence[float] = (2e-3, 1e-2),
    seed: int = 0,
    accuracy_samples: int = 2000,
    executor: Optional[Executor] = None,
    parallel: int = 2,
    make: Optional[Callable[[float, float], keras.Model]] = None,
    widths: Sequence[float] = (0.75, 0.5, 0.375, 0.25),
    resolutions: Sequence[float] = (1.0, 0.75, 0.5),
    float_epochs: int = 3,
    progress: bool = False,
) -> FitResult:
    """The most accurate QAT model found that fits `board`, exported and measured.

    Args:
        model: a trained float Keras 3 model (or `.keras` path) that outputs logits.
        board: a `tflw.boards` key or `Board`: its model flash and arena budgets.
        train_data: (inputs, integer labels) for fine-tuning candidates.
        validation_data: (inputs, labels) held out: sensitivities and the accuracy that
            picks the winner, both measured here (outputs from TFLite-Micro for the latter).
        decode: the target runtime has TFLite-Micro's DECODE op, so layers may take fewer
            than 8 bits, shipped LUT-compressed (DECODE's code counts as flash). The
            Arduino libraries have no DECODE: leave it False there, and bits stay 8.
        max_flash: a tighter model flash budget than the board's, in bytes.
        max_arena: a tighter arena budget than the board's, in bytes.
        max_macs: an upper bound on MACs (estimated latency: `board.latency_seconds`).
        bits: weight bit options per layer (with decode); keeps: channel keep ratios per
            channel group (a group: channels tied together by residual adds).
        epochs: fine-tuning epochs per candidate; candidates: how many of the best
            configurations by estimated loss are fine-tuned and measured.
        out_dir: trials, `fit.json` (every trial; a rerun with the same model and settings
            resumes from it) and `pareto.png`.
        loss: the training loss (default: sparse categorical cross-entropy on logits).
        batch_size: of the fine-tuning (Adam).
        learning_rates: the fine-tuning rates each candidate chooses from on the held-out
            data (`train_candidate`: half an epoch more per extra rate). Both defaults are
            well above the usual QAT rate: a network that just lost channels recovers in a
            few epochs only at 1e-2, while low-bit layers of a residual network can
            diverge there and want 2e-3.
        seed: seeds the fine-tuning (the search itself is deterministic).
        accuracy_samples: validation samples run in TFLite-Micro per trial.
        executor: where candidates train: None runs them here, one after the other; a
            `concurrent.futures.Executor` runs `parallel` of them at a time, e.g.
            `ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn"))` on
            this machine, or `tflw.search.RayExecutor()` on a Ray cluster (more machines).
            Workers read the float model from `out_dir/float.keras` and write their trial
            folders under `out_dir`, which must be a path they share.
        make: builds the model at a width multiplier and an input resolution,
            `make(1.0, 1.0)` being `model`'s architecture and `make(w, r)` taking inputs
            with every axis but the channels scaled by r (`scaled_shape`). Then, for each
            of `resolutions`, the widest of `widths` whose int8 model is estimated to fit
            is trained from scratch (`float_epochs` on `train_data` resized to it, at the
            largest rate), fine-tuned like the others, and competes with them; a lower
            resolution is tried only where it allows a wider model than a higher one
            (arena budgets: flash hardly depends on resolution). Channels chosen per layer
            on a trained model, or fewer everywhere trained anew: which wins depends on
            the model and the training budget. A model at a lower resolution needs its
            inputs resized on the device as `tflw.search.resize_inputs` does.
        progress: report each step on stderr.

    Returns:
        A `FitResult`.

    Raises:
        ModelTooLargeError: no configuration fits; names the smallest reachable flash and
            arena and the layers that hold them. Raised before any training where the
            estimates already show it.

    Example:
        >>> fit = tflw.fit_board(model, "nano33ble", (x, y), (x_val, y_val), max_flash=40_000)
        >>> fit.trial.measured.flash_bytes <= 40_000
        True
    """
    started = time.perf_counter()
    model = load_model(model)
    if is_quantization_aware(model):
        raise UnsupportedModelError(
            f"'{model.name}' is already quantization-aware: give fit_board the trained float "
            "model; it quantizes each candidate itself.")
    check_model(model)
    x_train, y_train = _labels(train_data, "train_data", model)
    x_val, y_val = _labels(validation_data, "validation_data", model)
    board = boards.get(board)
    budgets = _budgets(board, max_flash, max_arena, max_macs)
    loss = loss or keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    space = read_space(model, bits=tuple(bits) if decode else (8,), keeps=tuple(keeps))
    settings = {"board": board.key, "budgets": budgets, "decode": decode, "bits": space.bits,
                "widths": None if make is None else list(widths), "float_epochs": float_epochs,
                "resolutions": None if make is None else list(resolutions),
                "keeps": space.keeps, "epochs": epochs, "seed": seed, "samples": len(x_train),
                "learning_rates": list(learning_rates), "batch_size": batch_size}
    zero = cost_model(space)
    if zero.estimate(_smallest(space))["flash"] > budgets["flash"]:
        raise _nothing_fits(zero, budgets, calibrated=False)

    search = _Search.resume(Path(out_dir), model, settings)
    val = (x_val[:accuracy_samples], y_val[:accuracy_samples])
    if not search.trials:
        _say(progress, "exporting the unchanged model at int8 to calibrate the byte estimates")
        search.add(_reference_trial(model, zero, (x_train, y_train), val, search.out_dir, loss))
    search.trials[0].fits = search.trials[0].measured.fits(budgets)
    if search.sensitivity is None:
        _say(progress, f"measuring {len(space.layers)} layers' and {len(space.groups)} channel "
                       "groups' sensitivity on held-out data")
        bits_loss, keep_loss = measure_sensitivity(
            model, space, x_val[:SENSITIVITY_SAMPLES], y_val[:SENSITIVITY_SAMPLES], loss,
            x_train[:RECALIBRATION_SAMPLES], progress=progress)
        search.sensitivity = {"bits": bits_loss, "keep": keep_loss}
        search.record()
    problem = build_problem(space, search.sensitivity["bits"], search.sensitivity["keep"])
    reference = search.trials[0].measured
    # An offline arena plan costs flash: candidates get one only where the arena budget binds.
    lower_arena = reference.arena_bytes > budgets["arena"]
    if lower_arena:
        _, reference = measure_candidate(
            keras.saving.load_model(search.out_dir / "int8" / "qat.keras"),
            search.out_dir / "int8-planned", *val, decode=False)
    problem.calibrate(reference.flash_bytes, reference.arena_bytes)

    # What every candidate shares; workers in other processes load the float model from a file.
    job = CandidateJob(model, unchanged(space), (x_train, y_train), teacher_logits(model, x_train),
                       keras.losses.serialize(loss), epochs, batch_size, tuple(learning_rates),
                       seed, str(search.out_dir), val, decode, lower_arena)
    if executor is not None:
        job = replace(job, model=str(search.out_dir / "float.keras"))
        model.save(job.model)
    _run_candidates(search, problem, budgets, job, candidates, executor, parallel, progress)
    if make is not None and not any(t.name.startswith("width-") for t in search.trials):
        for trial in _scaled_trials(make, widths, resolutions if x_val.ndim > 2 else (1.0,),
                                    problem, budgets, float_epochs, job, progress):
            search.add(trial)
    # The unchanged model, calibrated but not fine-tuned, competes too.
    fitting = [t for t in search.trials if t.fits]
    if not fitting:
        raise _nothing_fits(problem, budgets, calibrated=True)
    best = max(fitting, key=lambda t: t.measured.accuracy)
    return _chosen(search, best, val[0], decode, lower_arena, budgets,
                   time.perf_counter() - started)
