"""The exact solver behind `fit_board`: one option per knob, least loss, every budget kept.

A knob is a choice with a few options (a layer's weight bits, a channel group's keep
ratio). A `Term` is a cost table over the options of one knob or several (a layer's flash
depends on its bits and on the channels kept at its input and its output). The solver
picks one option per knob that minimizes the sum of the "loss" terms while the sum of
every other resource stays within its budget: an integer linear program, solved exactly
by HiGHS through `scipy.optimize.milp`.

```python
options = {"conv1.bits": 3, "group1.keep": 4}
terms = [Term(("conv1.bits", "group1.keep"), {"flash": table_3x4, "loss": loss_3x4})]
choice = solve(options, terms, {"flash": 40_000})   # {"conv1.bits": 1, "group1.keep": 0}
```

A term over several knobs gets one binary variable per combination of their options,
tied to the knobs' own one-hot variables by marginal equalities: for 0/1 variables this
forces the combination variable to be exactly the product, so the program is exact, not a
relaxation (as in HAWQ-V3's integer program over per-layer bit widths).
"""

import itertools
from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

OBJECTIVE = "loss"


@dataclass(frozen=True)
class Term:
    """Costs that depend on the options of `knobs`.

    Attributes:
        knobs: the knobs' names.
        costs: resource name -> array whose shape is the knobs' option counts; the
            resource `OBJECTIVE` ("loss") is minimized, the others are budgeted.
    """

    knobs: Tuple[str, ...]
    costs: Mapping[str, np.ndarray]


def total(choice: Mapping[str, int], terms: Sequence[Term], resource: str) -> float:
    """The sum of `resource` over `terms` for `choice` (knob -> option index)."""
    return float(sum(np.asarray(term.costs[resource])[tuple(choice[k] for k in term.knobs)]
                     for term in terms if resource in term.costs))


def _variables(options: Mapping[str, int], terms: Sequence[Term]) -> tuple:
    """Column of each knob's options, and of each multi-knob term's combinations."""
    columns: Dict[tuple, int] = {}
    for knob, count in options.items():
        for option in range(count):
            columns[(knob, option)] = len(columns)
    tuples = sorted({term.knobs for term in terms if len(term.knobs) > 1})
    for knobs in tuples:
        for combination in itertools.product(*(range(options[k]) for k in knobs)):
            columns[(knobs, combination)] = len(columns)
    return columns, tuples


def _column(columns: dict, term: Term, combination: tuple) -> int:
    if len(term.knobs) == 1:
        return columns[(term.knobs[0], combination[0])]
    return columns[(term.knobs, combination)]


def solve(options: Mapping[str, int], terms: Sequence[Term],
          budgets: Mapping[str, float]) -> Optional[Dict[str, int]]:
    """The option per knob of least total loss within `budgets`; None when none fits.

    Args:
        options: knob name -> number of options.
        terms: cost tables; each term's arrays have the shape of its knobs' option counts.
        budgets: resource name -> the most its total may be.

    Returns:
        knob name -> chosen option index, or None if no choice keeps every budget.
    """
    # here, not at import: `import tflw` need not load SciPy's optimizers
    from scipy.optimize import Bounds, LinearConstraint, milp

    for term in terms:
        unknown = [k for k in term.knobs if k not in options]
        if unknown:
            raise ValueError(f"term over {term.knobs} names unknown knob(s) {unknown}")
    columns, tuples = _variables(options, terms)
    size = len(columns)
    objective = np.zeros(size)
    rows = {resource: np.zeros(size) for resource in budgets}
    for term in terms:
        shape = tuple(options[k] for k in term.knobs)
        for resource, table in term.costs.items():
            target = objective if resource == OBJECTIVE else rows.get(resource)
            if target is None:
                continue
            table = np.broadcast_to(np.asarray(table, np.float64), shape)
            for combination in itertools.product(*(range(n) for n in shape)):
                target[_column(columns, term, combination)] += table[combination]
    equalities = []
    for knob, count in options.items():
        row = np.zeros(size)
        row[[columns[(knob, o)] for o in range(count)]] = 1.0
        equalities.append((row, 1.0))
    for knobs in tuples:
        combinations = list(itertools.product(*(range(options[k]) for k in knobs)))
        for position, knob in enumerate(knobs):
            for option in range(options[knob]):
                row = np.zeros(size)
                row[[columns[(knobs, c)] for c in combinations if c[position] == option]] = 1.0
                row[columns[(knob, option)]] = -1.0
                equalities.append((row, 0.0))
    constraints = [LinearConstraint(np.array([r for r, _ in equalities]),
                                    [b for _, b in equalities], [b for _, b in equalities])]
    if rows:
        constraints.append(LinearConstraint(np.array(list(rows.values())), -np.inf,
                                            np.array([budgets[r] for r in rows], np.float64)))
    result = milp(objective, integrality=np.ones(size), bounds=Bounds(0, 1),
                  constraints=constraints, options={"mip_rel_gap": 0.0})
    if result.x is None:
        return None
    return {knob: next(o for o in range(count) if result.x[columns[(knob, o)]] > 0.5)
            for knob, count in options.items()}
