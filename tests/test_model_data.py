"""Data for a model in every form tflw takes, checked in one place."""

import keras
import numpy as np
import pytest

from tflw.errors import InputMismatchError, NonFiniteError, UnsupportedModelError
from tflw.model_data import data_batches, model_arrays, one_input_array


def two_inputs() -> keras.Model:
    image, signal = keras.Input((4, 4, 1), name="image"), keras.Input((3,), name="signal")
    joined = keras.layers.Concatenate()([keras.layers.Flatten()(image), signal])
    return keras.Model([image, signal], keras.layers.Dense(2)(joined))


def one_input() -> keras.Model:
    inputs = keras.Input((8, 8, 1))
    return keras.Model(inputs, keras.layers.Flatten()(inputs))


IMAGE = np.arange(5 * 16, dtype=np.float64).reshape(5, 4, 4, 1)
SIGNAL = np.ones((5, 3), np.float32)


def test_a_list_a_tuple_and_a_dict_give_one_float32_array_per_input_in_order():
    model = two_inputs()
    for data in ([IMAGE, SIGNAL], (IMAGE, SIGNAL), {"signal": SIGNAL, "image": IMAGE}):
        image, signal = model_arrays(data, "data", model)
        assert image.dtype == np.float32 and np.array_equal(image, IMAGE)
        assert signal.shape == (5, 3)


def test_batches_from_a_generator_a_list_or_a_dataset_are_checked_and_joined():
    import tensorflow as tf

    model = two_inputs()
    generator = ([IMAGE[i:i + 2], SIGNAL[i:i + 2]] for i in range(0, 5, 2))
    assert [a.shape[0] for a in model_arrays(generator, "data", model)] == [5, 5]
    listed = [{"image": IMAGE[:2], "signal": SIGNAL[:2]},
              {"image": IMAGE[2:], "signal": SIGNAL[2:]}]
    assert [len(batch[0]) for batch in data_batches(listed, "data", model)] == [2, 3]
    dataset = tf.data.Dataset.from_tensor_slices((IMAGE, SIGNAL)).batch(4)
    assert [len(batch[1]) for batch in data_batches(dataset, "data", model)] == [4, 1]
    single = ([np.zeros((n, 8, 8, 1))] for n in (3, 2))  # batches of one array each
    assert len(model_arrays(single, "data", one_input())[0]) == 5
    with pytest.raises(InputMismatchError, match=r"gives 2 array\(s\); the model takes 1"):
        model_arrays([np.zeros((3, 8, 8, 1))] * 2, "data", one_input())  # one per input


def test_the_wrong_count_of_arrays_names_the_inputs_and_the_forms():
    with pytest.raises(InputMismatchError, match=r"gives 1 array\(s\); the model takes 2 "
                                                 r"input\(s\), 'image' \(4, 4, 1\), 'signal'"):
        model_arrays([IMAGE], "calibration_data", two_inputs())
    with pytest.raises(InputMismatchError, match="labels do not go here"):
        model_arrays((IMAGE, SIGNAL, np.zeros(5)), "calibration_data", two_inputs())
    with pytest.raises(InputMismatchError, match=r"missing \['signal'\], unknown \['sound'\]"):
        model_arrays({"image": IMAGE, "sound": SIGNAL}, "sample_inputs", two_inputs())
    dataset_of_pairs = [(np.zeros((2, 8, 8, 1)), np.zeros(2))]  # (x, y) batches of fit
    with pytest.raises(InputMismatchError, match=r"\(batch 0\) gives 2 array"):
        data_batches(dataset_of_pairs, "data", one_input())


def test_shape_sample_counts_dtype_and_values_are_named_per_input():
    model = two_inputs()
    with pytest.raises(InputMismatchError, match=r"representative_data for input 'image' has "
                                                 r"shape \(5, 4, 5, 1\); model input 'image' "
                                                 r"takes samples of shape \(4, 4, 1\)"):
        model_arrays([np.zeros((5, 4, 5, 1)), SIGNAL], "representative_data", model)
    with pytest.raises(InputMismatchError, match="gives 5, 4 samples"):
        model_arrays([IMAGE, SIGNAL[:4]], "data", model)
    with pytest.raises(InputMismatchError, match="for input 'signal' is not numeric"):
        model_arrays([IMAGE, np.array([["a", "b", "c"]] * 5)], "data", model)
    bad = SIGNAL.copy()
    bad[3, 1] = np.nan
    with pytest.raises(NonFiniteError, match=r"for input 'signal' holds NaN/Inf \(first in "
                                             r"sample 3\)"):
        model_arrays([IMAGE, bad], "data", model)
    with pytest.raises(InputMismatchError, match="is empty"):
        model_arrays(np.zeros((0, 8, 8, 1)), "data", one_input())
    with pytest.raises(InputMismatchError, match="holds no batch"):
        model_arrays(iter([]), "data", one_input())


def test_a_feature_for_one_input_refuses_several_by_name():
    with pytest.raises(UnsupportedModelError, match="tflw.ptq takes models with one input"):
        one_input_array([IMAGE, SIGNAL], "calibration_data", two_inputs(), "tflw.ptq")
