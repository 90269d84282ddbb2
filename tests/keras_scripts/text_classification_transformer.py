"""keras-io's "Text classification with Transformer" (Apoorv Nandan), written with the
functional API instead of its two subclassed layers: the transformer block is a function
of tensors (MultiHeadAttention, Dropout, Add, LayerNormalization, a Dense MLP), and the
token and position embeddings are two Embedding layers, the positions a second input
(what the subclass computed with ops.arange). Keras' IMDB reviews, the top 20k words,
the first 200 of each review."""

import numpy as np

from funcnn import keras
from funcnn.keras import layers


def transformer_block(inputs, embed_dim, num_heads, ff_dim, rate=0.1):
    attn_output = layers.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim)(inputs, inputs)
    attn_output = layers.Dropout(rate)(attn_output)
    out1 = layers.LayerNormalization(epsilon=1e-6)(layers.Add()([inputs, attn_output]))
    ffn_output = layers.Dense(ff_dim, activation="relu")(out1)
    ffn_output = layers.Dense(embed_dim)(ffn_output)
    ffn_output = layers.Dropout(rate)(ffn_output)
    return layers.LayerNormalization(epsilon=1e-6)(layers.Add()([out1, ffn_output]))


def token_and_position_embedding(tokens, positions, maxlen, vocab_size, embed_dim):
    token_emb = layers.Embedding(input_dim=vocab_size, output_dim=embed_dim)(tokens)
    pos_emb = layers.Embedding(input_dim=maxlen, output_dim=embed_dim)(positions)
    return layers.Add()([token_emb, pos_emb])


vocab_size = 20000  # Only consider the top 20k words
maxlen = 200  # Only consider the first 200 words of each movie review
(x_train, y_train), (x_val, y_val) = keras.datasets.imdb.load_data(num_words=vocab_size)
print(len(x_train), "Training sequences")
print(len(x_val), "Validation sequences")
x_train = keras.utils.pad_sequences(x_train, maxlen=maxlen)
x_val = keras.utils.pad_sequences(x_val, maxlen=maxlen)
p_train = np.tile(np.arange(maxlen), (len(x_train), 1))
p_val = np.tile(np.arange(maxlen), (len(x_val), 1))

embed_dim = 32  # Embedding size for each token
num_heads = 2  # Number of attention heads
ff_dim = 32  # Hidden layer size in feed forward network inside transformer

inputs = layers.Input(shape=(maxlen,))
positions = layers.Input(shape=(maxlen,))
x = token_and_position_embedding(inputs, positions, maxlen, vocab_size, embed_dim)
x = transformer_block(x, embed_dim, num_heads, ff_dim)
x = layers.GlobalAveragePooling1D()(x)
x = layers.Dropout(0.1)(x)
x = layers.Dense(20, activation="relu")(x)
x = layers.Dropout(0.1)(x)
outputs = layers.Dense(2, activation="softmax")(x)

model = keras.Model(inputs=[inputs, positions], outputs=outputs)

model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
history = model.fit(
    [x_train, p_train], y_train, batch_size=32, epochs=2, validation_data=([x_val, p_val], y_val)
)
loss, acc = model.evaluate([x_val, p_val], y_val, verbose=0)
print("Validation accuracy:", acc)
