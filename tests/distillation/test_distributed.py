from tests.conftest import run_with_two_replicas


def test_qat_student_distills_under_mirrored_strategy_with_two_replicas():
    result = run_with_two_replicas("""
        def cnn(width):
            inputs = keras.Input((8, 8, 1))
            x = keras.layers.Conv2D(width, 3, activation="relu")(inputs)
            x = keras.layers.GlobalAveragePooling2D()(x)
            return keras.Model(inputs, keras.layers.Dense(4)(x))
        rng = np.random.default_rng(0)
        x, y = rng.uniform(size=(64, 8, 8, 1)).astype("float32"), rng.integers(0, 4, 64)
        with strategy.scope():
            teacher = cnn(8)
            student = tflw.quantize_model(cnn(4), calibration_data=x)
            teacher_before = [w.copy() for w in teacher.get_weights()]
            distiller = tflw.Distiller(student, teacher, temperature=4.0, alpha=0.2)
            distiller.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        history = distiller.fit(x, y, batch_size=16, epochs=2, verbose=0)
        frozen = all(np.array_equal(a, b) for a, b in zip(teacher_before, teacher.get_weights()))
        print(json.dumps({"replicas": strategy.num_replicas_in_sync, "teacher_frozen": frozen,
                          "loss": history.history["loss"]}))
    """)
    assert result["replicas"] == 2 and result["teacher_frozen"]
    assert all(l == l for l in result["loss"]) and result["loss"][-1] < result["loss"][0]
