import itertools

import numpy as np
import pytest

from tflw.search.solver import Term, solve, total


def brute_force(options, terms, budgets):
    best, best_loss = None, np.inf
    knobs = list(options)
    for combination in itertools.product(*(range(options[k]) for k in knobs)):
        choice = dict(zip(knobs, combination))
        if all(total(choice, terms, r) <= b for r, b in budgets.items()):
            loss = total(choice, terms, "loss")
            if loss < best_loss:
                best, best_loss = choice, loss
    return best, best_loss


def random_problem(rng):
    """Layers whose flash depends on their bits and the channels kept on both sides (a
    chain of channel groups), and a per-step arena over the groups' activations."""
    layers = int(rng.integers(2, 4))
    options = {f"bits{i}": int(rng.integers(1, 4)) for i in range(layers)}
    options.update({f"keep{i}": int(rng.integers(1, 4)) for i in range(layers + 1)})
    terms = []
    for i in range(layers):
        knobs = (f"bits{i}", f"keep{i}", f"keep{i + 1}")
        shape = tuple(options[k] for k in knobs)
        terms.append(Term(knobs, {"flash": rng.integers(1, 50, shape).astype(float),
                                  f"arena{i}": rng.integers(1, 20, shape[1:])[None].repeat(shape[0], 0)}))
        terms.append(Term((f"bits{i}",), {"loss": rng.random(options[f"bits{i}"])}))
    for i in range(layers + 1):
        terms.append(Term((f"keep{i}",), {"loss": rng.random(options[f"keep{i}"])}))
    budgets = {"flash": float(rng.integers(layers * 10, layers * 40))}
    budgets.update({f"arena{i}": float(rng.integers(10, 35)) for i in range(layers)})
    return options, terms, budgets


@pytest.mark.parametrize("seed", range(40))
def test_solver_is_optimal_against_brute_force(seed):
    options, terms, budgets = random_problem(np.random.default_rng(seed))
    expected, expected_loss = brute_force(options, terms, budgets)
    choice = solve(options, terms, budgets)
    if expected is None:
        assert choice is None
        return
    assert choice is not None
    assert all(total(choice, terms, r) <= b for r, b in budgets.items())
    assert total(choice, terms, "loss") == pytest.approx(expected_loss, abs=1e-9)


def test_no_choice_within_budget_gives_none():
    terms = [Term(("a",), {"flash": np.array([10.0, 5.0]), "loss": np.array([0.0, 1.0])})]
    assert solve({"a": 2}, terms, {"flash": 4.0}) is None
    assert solve({"a": 2}, terms, {"flash": 5.0}) == {"a": 1}


def test_a_term_naming_an_unknown_knob_is_refused():
    with pytest.raises(ValueError, match="unknown knob"):
        solve({"a": 2}, [Term(("a", "b"), {"loss": np.zeros((2, 2))})], {})
