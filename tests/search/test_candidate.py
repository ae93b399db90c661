import keras
import pytest

from tflw.distillation.distiller import teacher_logits
from tflw.search.candidate import top1, train_candidate
from tflw.search.problem import unchanged
from tflw.search.space import read_space

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


@pytest.fixture(scope="module")
def task(trained_demo_w8, mnist):
    (x, y), (x_val, y_val) = mnist
    x, y = x[:600], y[:600]
    model = trained_demo_w8
    return model, (x, y, teacher_logits(model, x)), (x_val[:300], y_val[:300])


def test_the_rate_that_does_better_on_held_out_data_is_chosen_not_the_first(task):
    model, train, val = task
    start = top1(model.predict(val[0], verbose=0), val[1])
    qat, rate = train_candidate(model, unchanged(read_space(model)), *train, LOSS, epochs=1,
                                learning_rates=(30.0, 1e-3), validation=val)
    assert rate == 1e-3  # 30.0 diverges: the first rate listed loses
    assert top1(qat.predict(val[0], verbose=0), val[1]) > start - 0.05


def test_choosing_a_rate_without_validation_data_is_refused(task):
    model, train, _ = task
    with pytest.raises(ValueError, match="validation"):
        train_candidate(model, unchanged(read_space(model)), *train, LOSS, epochs=1,
                        learning_rates=(1e-3, 1e-2))
