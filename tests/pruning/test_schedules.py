import keras
import pytest

import tflw
from tflw.pruning import PruningSchedule


def test_polynomial_decay_follows_the_formula():
    schedule = tflw.PolynomialDecay(0.1, 0.9, begin_step=100, end_step=1100, power=3, frequency=50)
    for step in (0, 100, 350, 600, 1100, 5000):
        p = min(max((step - 100) / 1000, 0.0), 1.0)
        assert schedule.sparsity(step) == pytest.approx(0.9 + (0.1 - 0.9) * (1 - p) ** 3)


def test_cubic_is_zhu_and_gupta_in_their_notation():
    cubic = tflw.CubicSparsity(0.8, begin_step=10, pruning_steps=20, frequency=5)
    # s_t = s_f + (s_i - s_f)(1 - (t - t0)/(n dt))^3 at t = t0 + 7 dt
    assert cubic.sparsity(10 + 7 * 5) == pytest.approx(0.8 - 0.8 * (1 - 7 / 20) ** 3)
    assert cubic.end_step == 110 and cubic.sparsity(110) == pytest.approx(0.8)


def test_constant_sparsity_prunes_on_its_frequency_inside_the_window():
    schedule = tflw.ConstantSparsity(0.5, begin_step=10, end_step=40, frequency=15)
    due = [step for step in range(60) if schedule.should_prune(step)]
    assert due == [10, 25, 40]
    assert schedule.sparsity(0) == 0.5


def test_schedules_serialize_and_print():
    schedule = tflw.PolynomialDecay(0.0, 0.75, begin_step=0, end_step=800)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
    assert isinstance(restored, PruningSchedule) and restored.get_config() == schedule.get_config()
    assert "75.0%" in str(schedule)


def test_bad_schedule_arguments_are_refused():
    with pytest.raises(ValueError, match="sparsity"):
        tflw.ConstantSparsity(1.0)
    with pytest.raises(ValueError, match="end_step"):
        tflw.PolynomialDecay(0.0, 0.5, begin_step=100, end_step=100)
