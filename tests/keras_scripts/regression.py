"""Predicting a continuous value (the book's house-prices example: two hidden layers of
64 units, a linear output, MSE with MAE as the metric, RMSprop). The data here is the
diabetes table scikit-learn ships."""

from sklearn.datasets import load_diabetes

from funcnn.keras import layers, models

(data, targets) = load_diabetes(return_X_y=True)
train_data, test_data = data[:350], data[350:]
train_targets, test_targets = targets[:350], targets[350:]

mean = train_data.mean(axis=0)
train_data -= mean
std = train_data.std(axis=0)
train_data /= std
test_data -= mean
test_data /= std
scale = train_targets.std()
train_targets = train_targets / scale
test_targets = test_targets / scale


def build_model():
    model = models.Sequential()
    model.add(layers.Dense(64, activation="relu", input_shape=(train_data.shape[1],)))
    model.add(layers.Dense(64, activation="relu"))
    model.add(layers.Dense(1))
    model.compile(optimizer="rmsprop", loss="mse", metrics=["mae"])
    return model


model = build_model()
history = model.fit(
    train_data, train_targets, validation_split=0.2, epochs=40, batch_size=16, verbose=0
)
mae_history = history.history["val_mae"]
test_mse_score, test_mae_score = model.evaluate(test_data, test_targets)
print("validation MAE, last epochs:", mae_history[-3:])
print("test MAE:", test_mae_score)
