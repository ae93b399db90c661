from tests.conftest import run_with_two_replicas


def test_pruning_trains_under_mirrored_strategy_with_two_replicas():
    result = run_with_two_replicas("""
        from tflw.pruning import layer_sparsity, pruned_layers
        with strategy.scope():
            inputs = keras.Input((8, 8, 4))
            x = keras.layers.Conv2D(8, 3, name="stem")(inputs)
            x = keras.layers.Conv2D(8, 3, name="body")(x)
            x = keras.layers.GlobalAveragePooling2D()(x)
            model = keras.Model(inputs, keras.layers.Dense(3, name="head")(x))
            pruned = tflw.prune_model(model, tflw.ConstantSparsity(0.6, 0, frequency=2))
            pruned.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        rng = np.random.default_rng(0)
        x, y = rng.normal(size=(64, 8, 8, 4)).astype("float32"), rng.integers(0, 3, 64)
        pruned.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[tflw.UpdatePruningStep()])
        layer = pruned_layers(pruned)[0]
        print(json.dumps({"replicas": strategy.num_replicas_in_sync, "layer": layer.name,
                          "sparsity": layer_sparsity(layer)}))
    """)
    assert result["replicas"] == 2 and result["layer"] == "body"
    assert abs(result["sparsity"] - 0.6) < 0.01
