"""A `SearchSpace` as the solver's integer program, and a solution as a model configuration.

```python
problem = build_problem(space, bits_loss, keep_loss)     # from measure_sensitivity
problem.calibrate(measured_flash, measured_arena)        # of the unchanged int8 model
config = problem.solve(flash=200_000, arena=60_000)     # None when nothing fits
problem.estimate(config)                                 # {"flash": ..., "arena": ..., "macs": ...}
```
"""

import itertools
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np

from tflw.search.solver import OBJECTIVE, Term, solve, total
from tflw.search.space import SearchSpace, kept

# Prefers the bigger option where measured losses tie (0 on a small held-out set): a
# compression that costs nothing measurable is not taken unless the budget needs it.
TIE_BREAK = 1e-6


@dataclass(frozen=True)
class Config:
    """One point of the search: weight bits per layer, channel keep ratio per group."""

    bits: Mapping[str, int]
    keep: Mapping[str, float]

    def to_dict(self) -> dict:
        return {"bits": dict(self.bits), "keep": dict(self.keep)}

    @staticmethod
    def from_dict(data: Mapping) -> "Config":
        return Config(dict(data["bits"]), {k: float(v) for k, v in data["keep"].items()})


@dataclass
class Problem:
    """The integer program of one search space.

    Attributes:
        space: what is searched.
        options: knob -> option count; terms: the cost and loss tables.
        fixed: resource -> the part of its total no knob changes.
        flash_overhead, arena_overhead: measured minus estimated bytes of the unchanged
            model (the flatbuffer's own structure; the interpreter's persistent part),
            added to every estimate once `calibrate` has run.
    """

    space: SearchSpace
    options: Dict[str, int]
    terms: List[Term]
    fixed: Dict[str, float] = field(default_factory=dict)
    flash_overhead: float = 0.0
    arena_overhead: float = 0.0

    def config(self, choice: Mapping[str, int]) -> Config:
        space = self.space
        return Config({l.name: space.bits[choice[f"bits:{l.name}"]] for l in space.layers},
                      {g: space.keeps[choice[f"keep:{g}"]] for g in space.groups})

    def choice(self, config: Config) -> Dict[str, int]:
        space = self.space
        return {**{f"bits:{n}": space.bits.index(b) for n, b in config.bits.items()},
                **{f"keep:{g}": space.keeps.index(k) for g, k in config.keep.items()}}

    def estimate(self, config: Config) -> Dict[str, float]:
        """Estimated flash and arena bytes and MACs of `config` (calibrated overheads added)."""
        choice = self.choice(config)
        arena = max(total(choice, self.terms, f"arena:{s}") + self.fixed.get(f"arena:{s}", 0.0)
                    for s in self.space.op_steps)
        return {"flash": total(choice, self.terms, "flash") + self.flash_overhead,
                "arena": arena + self.arena_overhead,
                "macs": total(choice, self.terms, "macs"),
                "loss": total(choice, self.terms, OBJECTIVE)}

    def calibrate(self, flash: int, arena: int) -> None:
        """Take the measured bytes of the unchanged model (8 bits, every channel kept)."""
        estimate = self.estimate(unchanged(self.space))
        self.flash_overhead += flash - estimate["flash"]
        self.arena_overhead += arena - estimate["arena"]

    def solve(self, flash: Optional[float] = None, arena: Optional[float] = None,
              macs: Optional[float] = None, extra_terms: Sequence[Term] = (),
              extra_budgets: Optional[Mapping[str, float]] = None) -> Optional[Config]:
        """The configuration of least summed sensitivity within the budgets, or None;
        `extra_terms` add resources (e.g. exclusions) that `extra_budgets` bound."""
        budgets: Dict[str, float] = dict(extra_budgets or {})
        if flash is not None:
            budgets["flash"] = flash - self.flash_overhead
        if macs is not None:
            budgets["macs"] = macs
        if arena is not None:
            for step in self.space.op_steps:
                budgets[f"arena:{step}"] = arena - self.arena_overhead - self.fixed.get(
                    f"arena:{step}", 0.0)
        choice = solve(self.options, list(self.terms) + list(extra_terms), budgets)
        return None if choice is None else self.config(choice)


def _layer_term(space: SearchSpace, layer) -> Term:
    knobs = [f"bits:{layer.name}"]
    groups = [g for g in dict.fromkeys((layer.in_group, layer.out_group)) if g is not None]
    knobs += [f"keep:{g}" for g in groups]
    shape = (len(space.bits),) + (len(space.keeps),) * len(groups)
    flash, macs, decoded = (np.zeros(shape) for _ in range(3))
    for index in itertools.product(*(range(n) for n in shape)):
        ratio = dict(zip(groups, (space.keeps[i] for i in index[1:])))
        keep_in, keep_out = ratio.get(layer.in_group, 1.0), ratio.get(layer.out_group, 1.0)
        bits = space.bits[index[0]]
        flash[index] = layer.flash(bits, keep_in, keep_out)
        macs[index] = layer.macs(keep_in, keep_out)
        # DECODE expands a compressed kernel into the arena while its op runs.
        decoded[index] = layer.shape(keep_in, keep_out)[0] if bits < 8 else 0
    op = space.layer_op[layer.name]
    return Term(tuple(knobs), {"flash": flash, "macs": macs, f"arena:{op}": decoded})


def build_problem(space: SearchSpace, bits_loss: Mapping[str, np.ndarray],
                  keep_loss: Mapping[str, np.ndarray]) -> Problem:
    """The program of `space` with per-layer `bits_loss[layer][i]` (loss increase at
    `space.bits[i]`) and per-group `keep_loss[group][i]` (at `space.keeps[i]`)."""
    options = {f"bits:{l.name}": len(space.bits) for l in space.layers}
    options.update({f"keep:{g}": len(space.keeps) for g in space.groups})
    terms = [_layer_term(space, layer) for layer in space.layers]
    shrink_bits = np.array([8 - b for b in space.bits], np.float64)
    shrink_keep = np.array([1.0 - k for k in space.keeps], np.float64)
    for layer in space.layers:
        loss = np.maximum(np.asarray(bits_loss[layer.name], np.float64), 0.0)
        terms.append(Term((f"bits:{layer.name}",), {OBJECTIVE: loss + TIE_BREAK * shrink_bits}))
    for group in space.groups:
        loss = np.maximum(np.asarray(keep_loss[group], np.float64), 0.0)
        terms.append(Term((f"keep:{group}",), {OBJECTIVE: loss + TIE_BREAK * shrink_keep}))
    fixed: Dict[str, float] = {}
    for tensor in space.activations:
        steps = range(tensor.first, tensor.last + 1)
        if tensor.group is None:
            for step in steps:
                fixed[f"arena:{step}"] = fixed.get(f"arena:{step}", 0.0) + tensor.nbytes
            continue
        channels = space.groups[tensor.group]
        sizes = np.array([tensor.nbytes * kept(channels, k) / channels for k in space.keeps])
        terms.append(Term((f"keep:{tensor.group}",), {f"arena:{s}": sizes for s in steps}))
    return Problem(space, options, terms, fixed)


def cost_model(space: SearchSpace, calibrated_by: Optional[Problem] = None) -> Problem:
    """The program of `space` with no losses: for estimates alone; with the overheads
    `calibrated_by` measured (for another width of the same architecture)."""
    problem = build_problem(space, {l.name: [0.0] * len(space.bits) for l in space.layers},
                            {g: [0.0] * len(space.keeps) for g in space.groups})
    if calibrated_by is not None:
        problem.flash_overhead = calibrated_by.flash_overhead
        problem.arena_overhead = calibrated_by.arena_overhead
    return problem


def unchanged(space: SearchSpace) -> Config:
    """Every layer at 8 bits, every channel kept."""
    return Config({l.name: 8 for l in space.layers}, {g: 1.0 for g in space.groups})
