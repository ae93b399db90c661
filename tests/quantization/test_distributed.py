from tests.conftest import run_with_two_replicas


def test_qat_trains_under_mirrored_strategy_with_identical_ranges_on_each_replica():
    result = run_with_two_replicas("""
        from tflw.demo import build_demo_model
        rng = np.random.default_rng(0)
        x, y = rng.uniform(0, 1, (64, 28, 28, 1)).astype("float32"), rng.integers(0, 10, 64)
        with strategy.scope():
            qat = tflw.quantize_model(build_demo_model(width=4), calibration_data=x[:16])
            qat.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        ranges = [v for v in qat.weights if v.path.endswith(("range_min", "range_max"))]
        before = [float(v.numpy()) for v in ranges]
        qat.fit(x, y, batch_size=16, epochs=2, verbose=0)
        per_replica = [[float(value) for value in strategy.experimental_local_results(v.value)]
                       for v in ranges]
        print(json.dumps({"replicas": strategy.num_replicas_in_sync, "before": before,
                          "per_replica": per_replica}))
    """)
    assert result["replicas"] == 2
    per_replica = result["per_replica"]
    assert all(len(values) == 2 and values[0] == values[1] for values in per_replica)
    # ranges come as (min, max) pairs; every max but the input's [0, 1] learns
    maxima = list(zip(per_replica, result["before"]))[1::2]
    assert sum(values[0] != start for values, start in maxima) >= len(maxima) - 1
