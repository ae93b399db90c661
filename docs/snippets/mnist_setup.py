import keras
import numpy as np

import tflw
from tflw.data import load_mnist_subset
from tflw.demo import build_demo_model

keras.utils.set_random_seed(0)
(x_train, y_train), (x_test, y_test) = load_mnist_subset()   # 6,000 / 1,000 bundled digits
x_train, y_train = x_train[:1000], y_train[:1000]            # small, to run in seconds
loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
model = build_demo_model(width=8)                            # or keras.saving.load_model(...)
model.compile("adam", loss, metrics=["accuracy"])
model.fit(x_train, y_train, epochs=1, verbose=0)
