"""A whole small model mixing the new pieces (Conv2D, BatchNormalization, ReLU, average pooling, global average
pooling, Dense, Adam) trained side by side with Keras 3 for 10 steps on identical weights and batches.

float64: losses, every weight (moving statistics included) and the inference outputs agree to 1e-10 relative
(1e-10 absolute near zero) after each step (the same arithmetic summed in another order: ~1e-14 expected).
Skips without Keras unless MINICNN_REQUIRE_KERAS=1.
"""

import pytest
from conftest import KERAS_MISSING, import_keras, synthetic_digits

import minicnn as mc
from minicnn import layers
from minicnn.keras_compat import compare_arrays, load_keras_weights

keras, tf = import_keras()
# Keras keeps its learning rate in float32 and casts beta_1, beta_2 through float32 before its power: numbers that
# float32 holds exactly make both sides compute the same rule in float64 (see tests/test_optimizers_keras.py)
ADAM = dict(learning_rate=2.0**-7, beta_1=0.875, beta_2=1 - 2.0**-10)
pytestmark = pytest.mark.skipif(keras is None, reason=KERAS_MISSING)


def ours_layers():
    return [
        layers.Conv2D(4, (3, 3), padding="same", use_bias=False, input_shape=(28, 28, 1)),
        layers.BatchNormalization(),
        layers.Activation("relu"),
        layers.AveragePooling2D((2, 2)),
        layers.Conv2D(6, (3, 3), strides=2, padding="same"),
        layers.BatchNormalization(momentum=0.9),
        layers.Activation("relu"),
        layers.GlobalAveragePooling2D(),
        layers.Dense(10, activation="softmax"),
    ]


def keras_model():
    L = keras.layers
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            L.Conv2D(4, 3, padding="same", use_bias=False),
            L.BatchNormalization(),
            L.Activation("relu"),
            L.AveragePooling2D(2),
            L.Conv2D(6, 3, strides=2, padding="same"),
            L.BatchNormalization(momentum=0.9),
            L.Activation("relu"),
            L.GlobalAveragePooling2D(),
            L.Dense(10, activation="softmax"),
        ]
    )


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_ten_training_steps_follow_keras_float64(backend):
    previous, previous_policy = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    try:
        keras.utils.set_random_seed(3)
        theirs = keras_model()
        ours = mc.Sequential(ours_layers(), backend=backend, dtype="float64")
        ours.compile(loss="categorical_crossentropy", optimizer=mc.optimizers.Adam(**ADAM))
        load_keras_weights(ours, theirs)
        opt = keras.optimizers.Adam(**ADAM)
        loss_fn = keras.losses.CategoricalCrossentropy()
        x, y = synthetic_digits(160, seed=4)
        x, y = x.astype("float64"), y.astype("float64")
        for step in range(10):
            xb, yb = x[step * 16 : (step + 1) * 16], y[step * 16 : (step + 1) * 16]
            with tf.GradientTape() as tape:
                loss_k = loss_fn(yb, theirs(xb, training=True))
            opt.apply_gradients(zip(tape.gradient(loss_k, theirs.trainable_weights), theirs.trainable_weights))
            loss_ours = ours.train_on_batch(xb, yb)[0]
            compare_arrays(loss_ours, float(loss_k), f"step {step + 1}: loss", rtol=1e-10, atol=1e-12)
            for w_ours, w_k, v in zip(ours.get_weights(), theirs.get_weights(), theirs.weights):
                # atol 1e-10: conv2d_1's bias feeds a BatchNormalization, so its exact gradient is 0 and it moves
                # only by rounding noise (~1e-12 a step, different on each side)
                compare_arrays(w_ours, w_k, f"step {step + 1}: {v.path}", rtol=1e-10, atol=1e-10)
        compare_arrays(
            ours.predict(x[:32]),
            theirs.predict(x[:32], verbose=0),
            "inference outputs after 10 steps",
            rtol=1e-10,
            atol=1e-12,
        )
    finally:
        keras.config.set_floatx(previous)
        keras.config.set_dtype_policy(previous_policy)
