"""The functional API, as Keras' guide introduces it: Input, layer calls, Model(inputs,
outputs), a logits output with SparseCategoricalCrossentropy(from_logits=True), then save
and load."""

import os
import tempfile

from funcnn import keras
from funcnn.keras import layers

inputs = keras.Input(shape=(784,))
x = layers.Dense(64, activation="relu")(inputs)
x = layers.Dense(64, activation="relu")(x)
outputs = layers.Dense(10)(x)

model = keras.Model(inputs=inputs, outputs=outputs, name="mnist_model")
model.summary()

(x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()

x_train = x_train.reshape(-1, 784).astype("float32") / 255
x_test = x_test.reshape(-1, 784).astype("float32") / 255

model.compile(
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    optimizer=keras.optimizers.RMSprop(),
    metrics=["accuracy"],
)

history = model.fit(x_train, y_train, batch_size=64, epochs=3, validation_split=0.2)

test_scores = model.evaluate(x_test, y_test, verbose=2)
print("Test loss:", test_scores[0])
print("Test accuracy:", test_scores[1])

path = os.path.join(tempfile.mkdtemp(), "my_model.keras")
model.save(path)
del model
# Recreate the exact same model purely from the file:
model = keras.models.load_model(path)
reloaded_scores = model.evaluate(x_test, y_test, verbose=0)
print("Reloaded test accuracy:", reloaded_scores[1])
