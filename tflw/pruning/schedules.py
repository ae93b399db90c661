"""Pruning schedules: how sparse each pruned layer should be at a given training step.

A schedule answers, for a step t, whether masks are recomputed now and to which sparsity.
The arguments follow tfmot's (`ConstantSparsity`, `PolynomialDecay`), so a tfmot recipe
carries over unchanged; `CubicSparsity` states Zhu & Gupta's schedule in their terms.

```python
schedule = tflw.PolynomialDecay(0.0, 0.8, begin_step=0, end_step=2000, frequency=100)
print(schedule)                  # a small table of sparsity over the steps
schedule.sparsity(1000)          # 0.7 (cubic by default)
```

References:
    Zhu & Gupta, "To prune, or not to prune: exploring the efficacy of pruning for model
    compression", ICLR Workshop 2018 (arXiv:1710.01878).
"""

from typing import Sequence

import keras


class PruningSchedule:
    """Base class: subclasses give `sparsity(step)` for steps inside the pruning window."""

    begin_step: int
    end_step: int
    frequency: int

    def sparsity(self, step: int) -> float:
        """Target sparsity at `step`."""
        raise NotImplementedError

    def should_prune(self, step: int) -> bool:
        """True at the steps where masks are recomputed: every `frequency` steps from
        `begin_step` until `end_step` (forever when `end_step` is -1), and at `end_step`."""
        if step < self.begin_step or (0 <= self.end_step < step):
            return False
        return (step - self.begin_step) % self.frequency == 0 or step == self.end_step

    def values(self, steps: Sequence[int]) -> list:
        """Sparsity at each of `steps` (for printing or plotting)."""
        return [self.sparsity(step) for step in steps]

    def __str__(self) -> str:
        last = self.end_step if self.end_step >= 0 else self.begin_step + 10 * self.frequency
        steps = sorted({self.begin_step + round(i * (last - self.begin_step) / 8) for i in range(9)})
        rows = "\n".join(f"  step {s:>8}  sparsity {v:6.1%}" for s, v in zip(steps, self.values(steps)))
        return f"{type(self).__name__}({self.get_config()})\n{rows}"

    def get_config(self) -> dict:
        raise NotImplementedError

    @classmethod
    def from_config(cls, config: dict) -> "PruningSchedule":
        return cls(**config)


@keras.saving.register_keras_serializable(package="tflw")
class ConstantSparsity(PruningSchedule):
    """One target sparsity, applied every `frequency` steps from `begin_step`.

    Args:
        target_sparsity: fraction of weights set to zero, in [0, 1).
        begin_step: first step at which masks are computed.
        end_step: last step (-1: keep pruning until training ends).
        frequency: steps between mask updates.
    """

    def __init__(self, target_sparsity: float, begin_step: int = 0, end_step: int = -1,
                 frequency: int = 100):
        _check(target_sparsity, begin_step, end_step, frequency)
        self.target_sparsity = float(target_sparsity)
        self.begin_step, self.end_step, self.frequency = begin_step, end_step, frequency

    def sparsity(self, step: int) -> float:
        return self.target_sparsity

    def get_config(self) -> dict:
        return {"target_sparsity": self.target_sparsity, "begin_step": self.begin_step,
                "end_step": self.end_step, "frequency": self.frequency}


@keras.saving.register_keras_serializable(package="tflw")
class PolynomialDecay(PruningSchedule):
    """Sparsity rising from `initial_sparsity` to `final_sparsity` as a polynomial.

    With p = clip((t - begin_step) / (end_step - begin_step), 0, 1):

        s(t) = final + (initial - final) * (1 - p) ** power

    `power=3` is Zhu & Gupta's schedule: fast pruning while the network is redundant,
    slow near the target.

    Args:
        initial_sparsity: fraction in [0, 1) at `begin_step`.
        final_sparsity: fraction in [0, 1) from `end_step` on.
        begin_step: first step of the pruning window.
        end_step: last step of the window (end_step > begin_step).
        power: exponent of the decay.
        frequency: steps between mask updates.
    """

    def __init__(self, initial_sparsity: float, final_sparsity: float, begin_step: int,
                 end_step: int, power: float = 3.0, frequency: int = 100):
        _check(final_sparsity, begin_step, end_step, frequency)
        _check(initial_sparsity, begin_step, end_step, frequency)
        if end_step <= begin_step:
            raise ValueError(f"end_step ({end_step}) must be after begin_step ({begin_step})")
        self.initial_sparsity = float(initial_sparsity)
        self.final_sparsity = float(final_sparsity)
        self.begin_step, self.end_step = begin_step, end_step
        self.power, self.frequency = float(power), frequency

    def sparsity(self, step: int) -> float:
        progress = min(max((step - self.begin_step) / (self.end_step - self.begin_step), 0.0), 1.0)
        return self.final_sparsity + (self.initial_sparsity - self.final_sparsity) * (
            (1.0 - progress) ** self.power)

    def get_config(self) -> dict:
        return {"initial_sparsity": self.initial_sparsity, "final_sparsity": self.final_sparsity,
                "begin_step": self.begin_step, "end_step": self.end_step, "power": self.power,
                "frequency": self.frequency}


@keras.saving.register_keras_serializable(package="tflw")
class CubicSparsity(PolynomialDecay):
    """Zhu & Gupta's gradual pruning, in their notation.

        s_t = s_f + (s_i - s_f) * (1 - (t - t_0) / (n * dt)) ** 3,  t in {t_0, t_0 + dt, ...}

    Args:
        final_sparsity: s_f.
        begin_step: t_0.
        pruning_steps: n, the number of mask updates.
        frequency: dt, steps between them.
        initial_sparsity: s_i (0 in the paper).
    """

    def __init__(self, final_sparsity: float, begin_step: int, pruning_steps: int,
                 frequency: int = 100, initial_sparsity: float = 0.0):
        self.pruning_steps = pruning_steps
        super().__init__(initial_sparsity, final_sparsity, begin_step,
                         begin_step + pruning_steps * frequency, power=3.0, frequency=frequency)

    def get_config(self) -> dict:
        return {"final_sparsity": self.final_sparsity, "begin_step": self.begin_step,
                "pruning_steps": self.pruning_steps, "frequency": self.frequency,
                "initial_sparsity": self.initial_sparsity}


def _check(sparsity: float, begin_step: int, end_step: int, frequency: int) -> None:
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    if begin_step < 0 or frequency < 1 or (end_step >= 0 and end_step < begin_step):
        raise ValueError(
            f"need 0 <= begin_step <= end_step (or end_step=-1) and frequency >= 1, got "
            f"begin_step={begin_step}, end_step={end_step}, frequency={frequency}"
        )
