"""A first neural network on tabular data, in the tutorials' words: 12-8-1 Dense layers,
binary cross-entropy, Adam, 'acc'; then class predictions. (The tutorials read the Pima
diabetes CSV; here the breast-cancer table scikit-learn ships.)"""

from sklearn.datasets import load_breast_cancer
from sklearn.preprocessing import StandardScaler

from funcnn.keras.callbacks import EarlyStopping
from funcnn.keras.layers import Dense
from funcnn.keras.models import Sequential

# load the dataset and split into input (X) and output (y) variables
X, y = load_breast_cancer(return_X_y=True)
X = StandardScaler().fit_transform(X)
y = y.reshape(-1, 1).astype("float32")  # labels of shape (N, 1), as read from a CSV

# define the keras model
model = Sequential()
model.add(Dense(12, input_dim=30, activation="relu", kernel_initializer="uniform"))
model.add(Dense(8, activation="relu", kernel_initializer="uniform"))
model.add(Dense(1, activation="sigmoid"))

# compile the keras model
model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["acc"])

# fit the keras model on the dataset
stop = EarlyStopping(monitor="val_loss", patience=5, restore_best_weights=True, verbose=1)
history = model.fit(
    X, y, validation_split=0.2, epochs=60, batch_size=10, verbose=0, callbacks=[stop]
)

# evaluate the keras model
_, accuracy = model.evaluate(X, y)
print("Accuracy: %.2f" % (accuracy * 100))
print("Training accuracy per epoch:", history.history["acc"][-3:])

# make class predictions with the model
predictions = (model.predict(X) > 0.5).astype(int)
for i in range(5):
    print("%s => %d (expected %d)" % (X[i][:3].tolist(), predictions[i][0], y[i][0]))
