"""Which Keras a model comes from; shared by quantization and export, which must not import
each other."""


def is_tf_keras_model(model) -> bool:
    """True for a legacy Keras 2 (`tf_keras`) model."""
    return type(model).__module__.split(".")[0] == "tf_keras"
