"""Built-in models, buildable offline: an AlexNet-style CNN trained on the digits data; Keras'
Inception V3, ResNet50, MobileNetV2, EfficientNetB0 and MobileNetV3Large (random weights by
default, a local weights file or "imagenet" when online); BERT-base with random weights; and a
small Vision Transformer trained on the digits."""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import numpy as np

from . import datasets as data


@dataclasses.dataclass
class Workload:
    """A model with what it takes to quantize, evaluate and benchmark it."""

    name: str
    model: object                          # a keras.Model (or a model path)
    calibration: object                    # the model's inputs, samples first: an array, or arrays by input name
    evaluation: data.Split | None          # labelled data, when there is any
    sample: object                         # unlabelled inputs (as calibration) for agreement checks and timing
    batch_sizes: tuple[int, ...]           # batch 1 and a throughput batch


def alexnet(input_shape=(32, 32, 1), classes: int = 10):
    """AlexNet-style CNN as in INC's AlexNet/MNIST example, scaled to small images: five
    convolutions with BatchNorm and ReLU, three max-pools, two hidden dense layers."""
    import keras
    from keras import layers

    def conv(x, filters, kernel, strides=1):
        x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization(momentum=0.9)(x)
        return layers.ReLU()(x)

    inputs = keras.Input(input_shape, name="image")
    x = conv(inputs, 48, 5)
    x = layers.MaxPooling2D(2)(x)
    x = conv(x, 96, 3)
    x = layers.MaxPooling2D(2)(x)
    x = conv(x, 128, 3)
    x = conv(x, 128, 3)
    x = conv(x, 96, 3)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(256, activation="relu")(x)
    x = layers.Dropout(0.3)(x)
    x = layers.Dense(128, activation="relu")(x)
    outputs = layers.Dense(classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="alexnet")


def train(model, train_split: data.Split, epochs: int = 12, seed: int = 0, verbose: int = 0):
    import keras

    keras.utils.set_random_seed(seed)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(train_split.x, train_split.y, batch_size=64, epochs=epochs, verbose=verbose)
    # A few hundred steps leave BatchNorm's moving averages behind the weights: settle them.
    reestimate_batch_norm(model, train_split.x[:512])
    return model


# Keras applications built in: their class and ImageNet input size.
APPLICATIONS = {"inception_v3": ("InceptionV3", 299), "resnet50": ("ResNet50", 224),
                "mobilenet_v2": ("MobileNetV2", 224), "efficientnet_b0": ("EfficientNetB0", 224),
                "mobilenet_v3_large": ("MobileNetV3Large", 224)}


def keras_application(name: str, weights: str | None = None, input_shape=None, sample: np.ndarray | None = None,
                      classes: int = 1000):
    """A Keras application of APPLICATIONS. `weights`: None (random), a local weights file, or
    "imagenet" (online only). With random weights, BatchNorm statistics are re-estimated on `sample`
    (default: synthetic images) so activations have realistic ranges for calibration."""
    import keras

    class_name, size = APPLICATIONS[name]
    input_shape = input_shape or (size, size, 3)
    model = getattr(keras.applications, class_name)(weights=weights, input_shape=input_shape, classes=classes)
    if weights is None:
        reestimate_batch_norm(model, data.synthetic_images(8, input_shape[0]) if sample is None else sample)
    return model


def inception_v3(weights: str | None = None, input_shape=(299, 299, 3), sample: np.ndarray | None = None,
                 classes: int = 1000):
    """Keras' Inception V3 (see keras_application)."""
    return keras_application("inception_v3", weights, input_shape, sample, classes)


def reestimate_batch_norm(model, batch: np.ndarray) -> None:
    """Set every BatchNormalization's moving statistics to those of `batch`, in one forward pass:
    with momentum 0, a training-mode pass stores exactly the batch statistics each layer sees."""
    import keras

    norms = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
    saved = [l.momentum for l in norms]
    for layer in norms:
        layer.momentum = 0.0
    try:
        model(batch, training=True)
    finally:
        for layer, momentum in zip(norms, saved):
            layer.momentum = momentum


def alexnet_workload(epochs: int = 12, seed: int = 0) -> Workload:
    train_split, test_split = data.digits()
    model = train(alexnet(), train_split, epochs=epochs, seed=seed)
    return Workload("alexnet", model, train_split.x[:200], test_split, test_split.x, (1, 64))


def application_workload(name: str, weights: str | None = None, seed: int = 0, size: int | None = None) -> Workload:
    """A Keras application at size x size (its ImageNet size unless a test wants it smaller: 75 is the
    least Inception V3 takes, 32 the least ResNet50 and MobileNetV2 take), calibrated and timed on
    synthetic images."""
    import keras

    full = APPLICATIONS[name][1]
    size = size or full
    keras.utils.set_random_seed(seed)  # the same random weights on every run
    model = keras_application(name, weights, (size, size, 3))
    return Workload(name if size == full else f"{name}_{size}", model, data.synthetic_images(20, size, seed=seed + 1),
                    None, data.synthetic_images(32, size, seed=seed + 2), (1, 16))


def inception_v3_workload(weights: str | None = None, seed: int = 0, size: int = 299) -> Workload:
    return application_workload("inception_v3", weights, seed, size)


def inception_v3_digits_workload(epochs: int = 3, size: int = 80, train_limit: int | None = None,
                                 seed: int = 0, full_size: int = 299) -> tuple[Workload, Workload]:
    """Inception V3 really trained, briefly, on the digits at a small input size (the network is
    fully convolutional up to global pooling), then the same weights at full_size x full_size.

    Returns (small, full): `small` carries the test split for a meaningful accuracy comparison,
    `full` the full-size model for speed (its sample is the test digits resized to full size).
    """
    train_split, test_split = data.digits(size=size)
    if train_limit:
        train_split = data.Split(train_split.x[:train_limit], train_split.y[:train_limit])
    to_rgb = lambda x: np.repeat(x, 3, axis=-1) * 2 - 1  # noqa: E731  (Inception takes [-1, 1] RGB)
    train_split, test_split = (data.Split(to_rgb(s.x), s.y) for s in (train_split, test_split))
    small = inception_v3(None, (size, size, 3), sample=train_split.x[:64], classes=10)
    train(small, train_split, epochs=epochs, seed=seed)
    full = inception_v3(None, (full_size, full_size, 3), sample=data.resize(train_split.x[:8], full_size), classes=10)
    full.set_weights(small.get_weights())
    test_full = data.resize(test_split.x[:32], full_size)
    return (Workload("inception_v3_digits", small, train_split.x[:40], test_split, test_split.x[:64], (1, 16)),
            Workload(f"inception_v3_{full_size}", full, data.resize(train_split.x[:20], full_size), None, test_full,
                     (1, 16)))


# BERT-base as ../shared/peers/models.py builds it for the other systems: 12 post-LayerNorm encoder
# layers, hidden 768, 12 heads, FFN 3072 with GELU, a tanh pooler, two int32 inputs.
BERT_BASE = dict(seq=128, vocab=30522, hidden=768, heads=12, layers=12, ff=3072)


def bert(seq: int, vocab: int, hidden: int, heads: int, layers: int, ff: int, classes: int = 2):
    """A BERT encoder with a classifier: inputs `input_ids` and `attention_mask` (batch, seq), int32."""
    import keras
    from keras import layers as L

    ids = keras.Input((seq,), dtype="int32", name="input_ids")
    mask_in = keras.Input((seq,), dtype="int32", name="attention_mask")
    x = L.LayerNormalization(epsilon=1e-12)(_positions()(name="positions")(L.Embedding(vocab, hidden)(ids)))
    mask = keras.ops.cast(keras.ops.expand_dims(mask_in, 1), "bool")  # (batch, 1, seq): keys a query may see
    for _ in range(layers):
        attended = L.MultiHeadAttention(heads, hidden // heads)(x, x, attention_mask=mask)
        x = L.LayerNormalization(epsilon=1e-12)(x + attended)
        x = L.LayerNormalization(epsilon=1e-12)(x + L.Dense(hidden)(L.Dense(ff, activation="gelu")(x)))
    pooled = L.Dense(hidden, activation="tanh")(x[:, 0])
    return keras.Model([ids, mask_in], L.Dense(classes)(pooled), name="bert")


@functools.cache
def _positions():
    """A layer adding a learned absolute position embedding (BERT's, ViT's): Keras has none built in."""
    import keras

    class Positions(keras.layers.Layer):
        def build(self, shape):
            self.table = self.add_weight(name="table", shape=(shape[1], shape[2]), initializer="random_normal")

        def call(self, x):
            return x + self.table

    return Positions


def vit(image_size: int = 8, patch: int = 2, hidden: int = 64, heads: int = 4, layers: int = 2, ff: int = 128,
        classes: int = 10):
    """A small Vision Transformer: patches embedded by a strided convolution, learned positions,
    pre-norm encoder blocks (MultiHeadAttention, a GELU MLP), the mean over tokens, a classifier."""
    import keras
    from keras import layers as L

    inputs = keras.Input((image_size, image_size, 1), name="image")
    x = L.Conv2D(hidden, patch, strides=patch)(inputs)
    x = _positions()(name="positions")(L.Reshape(((image_size // patch) ** 2, hidden))(x))
    for _ in range(layers):
        h = L.LayerNormalization(epsilon=1e-6)(x)
        x = x + L.MultiHeadAttention(heads, hidden // heads)(h, h)
        h = L.LayerNormalization(epsilon=1e-6)(x)
        x = x + L.Dense(hidden)(L.Dense(ff, activation="gelu")(h))
    x = L.GlobalAveragePooling1D()(L.LayerNormalization(epsilon=1e-6)(x))
    return keras.Model(inputs, L.Dense(classes, activation="softmax")(x), name="vit")


def vit_digits_workload(epochs: int = 60, seed: int = 0) -> Workload:
    """The ViT above trained on the 8x8 digits as they ship (16 patches of 2x2 pixels)."""
    train_split, test_split = data.digits(size=8)
    model = train(vit(), train_split, epochs=epochs, seed=seed)
    return Workload("vit_digits", model, train_split.x[:400], test_split, test_split.x, (1, 64))


def token_batch(count: int, seq: int, vocab: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Random token ids, each row padded (ids 0, mask 0) after a random length of at least half."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, vocab, (count, seq)).astype(np.int32)
    mask = np.ones((count, seq), np.int32)
    for row, length in enumerate(rng.integers(seq // 2, seq + 1, count)):
        ids[row, length:], mask[row, length:] = 0, 0
    return {"input_ids": ids, "attention_mask": mask}


def bert_workload(seed: int = 0, **config) -> Workload:
    import keras

    config = {**BERT_BASE, **config}
    keras.utils.set_random_seed(seed)  # the same random weights on every run
    model = bert(**config)
    name = "bert_base" if config == BERT_BASE else "bert"
    return Workload(name, model, token_batch(20, config["seq"], config["vocab"], seed + 1), None,
                    token_batch(32, config["seq"], config["vocab"], seed + 2), (1, 16))


BUILTIN: dict[str, Callable[[], Workload]] = {
    "alexnet": alexnet_workload,
    **{name: functools.partial(application_workload, name) for name in APPLICATIONS},
    "bert_base": bert_workload,
}
