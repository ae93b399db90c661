import random

import keras
import numpy as np
import pytest

import tflw
from tflw.export.channel_split import split_candidates
from tflw.export.memory_plan import (ActivationBuffer, activation_buffers, check_plan,
                                     greedy_head, lower_bound, offline_plan, planned_offsets,
                                     with_offline_plan)
from tflw.export.tflm import run_tflm

# A chain where largest-first is wrong: it puts the third 32 B buffer at offset 0, which
# leaves a 16 B gap the fourth one cannot use (112 B), where 80 B suffice.
CHAIN = [ActivationBuffer(0, 48, 1, 2), ActivationBuffer(1, 32, 2, 3),
         ActivationBuffer(2, 32, 4, 5), ActivationBuffer(3, 32, 3, 4)]


def test_check_plan_names_two_tensors_alive_at_once_that_overlap():
    with pytest.raises(ValueError, match=r"tensors 0 and 1 are alive at once"):
        check_plan(CHAIN, {0: 0, 1: 32, 2: 0, 3: 96})
    with pytest.raises(ValueError, match=r"no offset for tensors \[3\]"):
        check_plan(CHAIN, {0: 0, 1: 48, 2: 0})
    check_plan(CHAIN, {0: 0, 1: 48, 2: 48, 3: 0})  # 0 and 2 share memory, never alive together


def test_the_offline_plan_reaches_the_bound_where_tflite_micros_greedy_order_does_not():
    assert greedy_head(CHAIN) == 112
    plan = offline_plan(CHAIN)
    assert plan.head_bytes == lower_bound(CHAIN) == 80
    check_plan(CHAIN, plan.offsets)


def test_plans_of_random_lifetimes_never_overlap_and_never_lose_to_the_greedy_order():
    wins = 0
    for case in range(200):
        generator = random.Random(case)
        buffers = []
        for tensor in range(generator.randint(2, 12)):
            first = generator.randint(0, 8)
            buffers.append(ActivationBuffer(tensor, 16 * generator.randint(1, 8), first,
                                            first + generator.randint(0, 3)))
        plan = offline_plan(buffers)
        check_plan(buffers, plan.offsets)
        assert max(plan.offsets[b.tensor] + b.bytes for b in buffers) == plan.head_bytes
        assert lower_bound(buffers) <= plan.head_bytes <= greedy_head(buffers)
        wins += plan.head_bytes < greedy_head(buffers)
    assert wins >= 10  # the search is not just the greedy order again


def _quantized(model: keras.Model, samples: int = 8):
    x = np.random.default_rng(0).uniform(0, 1, (samples, *model.input_shape[1:])).astype("float32")
    return tflw.quantize_model(model, calibration_data=x), x


def test_export_keeps_the_offline_plan_where_tflite_micro_measures_a_smaller_arena(tmp_path):
    keras.utils.set_random_seed(0)
    qat, x = _quantized(tflw.models.mobilenet_v1(0.25, (32, 32, 3), classes=10))
    result = tflw.export(qat, tmp_path / "planned", sample_inputs=x)
    arena = result.report["arena"]
    assert arena["offline_plan"] is True
    assert result.arena_bytes == arena["arena_bytes"] < arena["tflm_default_arena_bytes"] - 1_000
    assert arena["offline_plan_head_bytes"] == arena["lower_bound_head_bytes"]
    model_bytes = result.tflite_path.read_bytes()
    check_plan(activation_buffers(model_bytes), planned_offsets(model_bytes))  # independent
    default = tflw.export(qat, tmp_path / "default", sample_inputs=x, minimize_arena=False)
    assert default.report["arena"] is None and planned_offsets(
        default.tflite_path.read_bytes()) is None
    assert default.arena_bytes == arena["tflm_default_arena_bytes"]
    assert np.array_equal(result.verification.outputs[0], default.verification.outputs[0])
    assert result.flatbuffer_bytes - default.flatbuffer_bytes == arena["flash_added_bytes"] < 2_000


def test_a_reshape_planned_on_its_inputs_memory_gives_the_same_outputs(tmp_path):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 4))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.Reshape((16, 4, 8))(x)
    x = keras.layers.Conv2D(8, 3, padding="same")(x)
    qat, x = _quantized(keras.Model(inputs, keras.layers.Flatten()(x)), 16)
    model_bytes = tflw.export(qat, tmp_path / "out", sample_inputs=x,
                              minimize_arena=False).tflite_path.read_bytes()
    buffers = activation_buffers(model_bytes)
    aliased = [b for b in buffers if b.alias_of is not None]
    assert aliased, "the RESHAPE between the convolutions shares its input's memory"
    plan = offline_plan(buffers)
    assert all(plan.offsets[b.tensor] == plan.offsets[b.alias_of] for b in aliased)
    planned = with_offline_plan(model_bytes, plan)
    inputs_int8 = np.random.default_rng(1).integers(-128, 128, (4, 8, 8, 4)).astype(np.int8)
    before, after = (run_tflm(m, [inputs_int8], 1).outputs[0] for m in (model_bytes, planned))
    assert np.std(before) > 0 and np.array_equal(before, after)


def test_low_bit_tensors_whose_decoded_copy_raises_the_peak_stay_int8_unless_asked(tmp_path):
    keras.utils.set_random_seed(0)
    model = tflw.models.mobilenet_v1(0.25, (32, 32, 3), classes=10)
    x = np.random.default_rng(0).uniform(0, 1, (8, 32, 32, 3)).astype("float32")
    qat = tflw.quantize_model(model, calibration_data=x, weight_bits=4)
    # minimize_arena off: the choice is lut_compress's own (it plans the int8 head itself)
    auto = tflw.export(qat, tmp_path / "auto", sample_inputs=x,
                       minimize_arena=False).report["lut"]
    kept, compressed = auto["kept_int8_for_arena"], [t["name"] for t in auto["tensors"]]
    assert kept and compressed and not set(kept) & set(compressed)
    assert auto["arena_bytes_measured"] <= 1.05 * (auto["arena_bytes_measured"]
                                                   - auto["arena_increase_bytes"])
    exported = tflw.export(qat, tmp_path / "every", sample_inputs=x, compress="always",
                           minimize_arena=False)
    every = exported.report["lut"]
    # a decoded weight is no constant: channel split leaves those pairs alone
    assert len(split_candidates(exported.compressed_path.read_bytes())) < len(split_candidates(
        exported.tflite_path.read_bytes()))
    assert not every["kept_int8_for_arena"] and len(every["tensors"]) == len(kept) + len(compressed)
    assert every["arena_increase_bytes"] > auto["arena_increase_bytes"] + 1_000
    assert every["flatbuffer_bytes"] < auto["flatbuffer_bytes"]  # flash for RAM, by choice


def test_a_model_whose_every_decoded_weight_raises_the_peak_says_so(tmp_path):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(32, 3, activation="relu")(inputs)
    x = keras.layers.Conv2D(32, 3, activation="relu")(x)
    model = keras.Model(inputs, keras.layers.Dense(4)(keras.layers.GlobalAveragePooling2D()(x)))
    x = np.random.default_rng(0).uniform(0, 1, (8, 12, 12, 3)).astype("float32")
    qat = tflw.quantize_model(model, calibration_data=x, weight_bits=4)
    result = tflw.export(qat, tmp_path / "out", sample_inputs=x)
    lut = result.report["lut"]
    assert lut["tensors"] == [] and len(lut["kept_int8_for_arena"]) == 1  # the 3x3x32x32
    assert "raise the arena's peak" in lut["why"] and result.compressed_path is None


def test_decodes_state_never_raises_a_small_models_arena_by_more_than_five_percent(tmp_path):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    x = inputs
    for _ in range(3):  # two 16x3x3x16 kernels to compress: small, each with DECODE's state
        x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    model = keras.Model(inputs, keras.layers.Dense(4)(keras.layers.GlobalAveragePooling2D()(x)))
    x = np.random.default_rng(0).uniform(0, 1, (8, 8, 8, 1)).astype("float32")
    qat = tflw.quantize_model(model, calibration_data=x, weight_bits=4)
    every = tflw.export(qat, tmp_path / "every", sample_inputs=x, compress="always")
    increase = every.report["lut"]["arena_increase_bytes"]
    assert increase > 0.05 * every.arena_bytes  # DECODE's state alone, on a 2 KB arena
    per_tensor = increase / len(every.report["lut"]["tensors"])
    assert per_tensor > 0.05 * every.arena_bytes  # even one compressed tensor is too many
    auto = tflw.export(qat, tmp_path / "auto", sample_inputs=x).report["lut"]
    assert auto["tensors"] == []
    assert len(auto["kept_int8_for_arena"]) == len(every.report["lut"]["tensors"]) == 2
    assert "DECODE's state" in auto["why"]
