import json
import zipfile

import keras
import numpy as np
import pytest

import tflw
from tflw.distillation import teacher_logits
from tflw.export.convert import to_tflite

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def cnn(width: int, name: str) -> keras.Model:
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(width, 3, padding="same", use_bias=False, name="features")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(4, name="logits")(x), name=name)


def data(count=96):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (count, 8, 8, 1)).astype("float32")
    return x, (x.mean(axis=(1, 2, 3)) * 4).astype("int64").clip(0, 3)


def softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_kd_loss_equals_hinton_by_hand():
    keras.utils.set_random_seed(0)
    teacher, student = cnn(8, "teacher"), cnn(4, "student")
    x, y = data(16)
    distiller = tflw.Distiller(student, teacher, temperature=3.0, alpha=0.25)
    distiller.compile("adam", LOSS)
    s, t = np.asarray(student(x)), np.asarray(teacher(x))
    loss = float(distiller.compute_loss(x, y, keras.ops.convert_to_tensor(s), training=False))

    ce = -np.mean(np.log(softmax(s)[np.arange(len(y)), y]))
    p, q = softmax(t / 3.0), softmax(s / 3.0)
    kl = np.mean(np.sum(p * np.log(p / q), axis=-1))
    assert loss == pytest.approx(0.25 * ce + 0.75 * 9.0 * kl, rel=1e-4)


def test_teacher_is_frozen_and_student_learns():
    keras.utils.set_random_seed(0)
    teacher, student = cnn(8, "teacher"), cnn(4, "student")
    before_teacher = [w.copy() for w in teacher.get_weights()]
    before_student = [w.copy() for w in student.get_weights()]
    x, y = data()
    distiller = tflw.Distiller(student, teacher)
    distiller.compile("adam", LOSS)
    distiller.fit(x, y, epochs=2, batch_size=32, verbose=0)
    for a, b in zip(before_teacher, teacher.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(before_student, student.get_weights()))


def test_cached_teacher_logits_give_the_same_loss_as_the_teacher():
    keras.utils.set_random_seed(0)
    teacher, student = cnn(8, "teacher"), cnn(4, "student")
    x, y = data(16)
    live = tflw.Distiller(student, teacher)
    cached = tflw.Distiller(student, teacher, cached_teacher_logits=True)
    for distiller in (live, cached):
        distiller.compile("adam", LOSS)
    s = student(x)
    logits = teacher_logits(teacher, x)
    assert float(cached.compute_loss(x, (y, logits), s)) == pytest.approx(
        float(live.compute_loss(x, y, s)), rel=1e-5)
    history = cached.fit(x, (y, logits), epochs=1, batch_size=16, verbose=0)
    assert np.isfinite(history.history["loss"][-1])


def test_hint_adapter_trains_and_stays_out_of_the_student(tmp_path):
    keras.utils.set_random_seed(0)
    teacher, student = cnn(8, "teacher"), cnn(4, "student")
    x, y = data()
    distiller = tflw.Distiller(student, teacher, hints={"features": "features"})
    adapter = distiller.hint_adapters[0]
    distiller.compile("adam", LOSS)
    distiller.fit(x, y, epochs=1, batch_size=32, verbose=0)
    assert adapter.kernel.shape == (1, 1, 4, 8)
    assert not any("hint_adapter" in w.path for w in student.weights)
    student.save(tmp_path / "student.keras")
    with zipfile.ZipFile(tmp_path / "student.keras") as archive:
        config = json.loads(archive.read("config.json"))
    assert "Distiller" not in json.dumps(config) and "hint_adapter" not in json.dumps(config)


def test_qat_student_distilled_exports_with_parity(tmp_path):
    keras.utils.set_random_seed(0)
    teacher, student = cnn(8, "teacher"), cnn(4, "student")
    x, y = data()
    teacher.compile("adam", LOSS)
    teacher.fit(x, y, epochs=3, verbose=0)
    qat = tflw.quantize_model(student, calibration_data=x)
    distiller = tflw.Distiller(qat, teacher, temperature=4.0, alpha=0.2)
    distiller.compile("adam", LOSS, metrics=["accuracy"])
    distiller.fit(x, y, epochs=2, batch_size=32, verbose=0)
    qat.save(tmp_path / "qat_student.keras")
    restored = keras.saving.load_model(tmp_path / "qat_student.keras")
    np.testing.assert_allclose(restored.predict(x, verbose=0), qat.predict(x, verbose=0), atol=1e-6)
    result = tflw.verify(to_tflite(distiller.student), x, reference=distiller.student)
    assert result.parity and result.argmax_agreement >= 0.99


def test_pruned_student_reaches_its_sparsity_through_the_distiller():
    keras.utils.set_random_seed(0)
    teacher, student = cnn(8, "teacher"), cnn(8, "student")
    pruned = tflw.prune_model(student, tflw.ConstantSparsity(0.5, 0, frequency=1), skip=["logits"])
    x, y = data()
    distiller = tflw.Distiller(pruned, teacher)
    distiller.compile("adam", LOSS)
    distiller.fit(x, y, epochs=1, batch_size=32, verbose=0, callbacks=[tflw.UpdatePruningStep()])
    small = tflw.strip_pruning(distiller.student)
    kernel = small.get_layer("features").kernel.numpy()
    assert np.mean(kernel == 0) == pytest.approx(0.5, abs=0.02)
