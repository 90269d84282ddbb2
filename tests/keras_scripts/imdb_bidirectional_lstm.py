"""Trains a Bidirectional LSTM on the IMDB sentiment classification task: Keras'
examples/imdb_bidirectional_lstm.py, with the evaluation that ends its imdb_lstm.py.
(No IMDB reviews ship with the library: the test hands the script stand-in reviews of
IMDB's form.)
"""

import numpy as np

from funcnn.keras.datasets import imdb
from funcnn.keras.layers import LSTM, Bidirectional, Dense, Dropout, Embedding
from funcnn.keras.models import Sequential
from funcnn.keras.preprocessing import sequence

max_features = 20000
# cut texts after this number of words
# (among top max_features most common words)
maxlen = 100
batch_size = 32

print("Loading data...")
(x_train, y_train), (x_test, y_test) = imdb.load_data(num_words=max_features)
print(len(x_train), "train sequences")
print(len(x_test), "test sequences")

print("Pad sequences (samples x time)")
x_train = sequence.pad_sequences(x_train, maxlen=maxlen)
x_test = sequence.pad_sequences(x_test, maxlen=maxlen)
print("x_train shape:", x_train.shape)
print("x_test shape:", x_test.shape)
y_train = np.array(y_train)
y_test = np.array(y_test)

model = Sequential()
model.add(Embedding(max_features, 128, input_length=maxlen))
model.add(Bidirectional(LSTM(64)))
model.add(Dropout(0.5))
model.add(Dense(1, activation="sigmoid"))

# try using different optimizers and different optimizer configs
model.compile("adam", "binary_crossentropy", metrics=["accuracy"])

print("Train...")
model.fit(x_train, y_train, batch_size=batch_size, epochs=4, validation_data=[x_test, y_test])
score, acc = model.evaluate(x_test, y_test, batch_size=batch_size)
print("Test score:", score)
print("Test accuracy:", acc)
