"""Data sets that work offline: scikit-learn's handwritten digits (real data, shipped in the
package) and synthetic natural-looking images for models without an offline data set."""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass
class Split:
    x: np.ndarray   # float32, NHWC
    y: np.ndarray   # int64 class labels


def digits(size: int = 32, test_fraction: float = 0.2, seed: int = 0) -> tuple[Split, Split]:
    """The 1,797 8x8 digits of scikit-learn, scaled to [0, 1] and resized (bilinear) to
    size x size, as a stratified (train, test) split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = resize((bunch.images / 16.0).astype(np.float32)[..., None], size)
    x_train, x_test, y_train, y_test = train_test_split(
        images, bunch.target.astype(np.int64), test_size=test_fraction, random_state=seed,
        stratify=bunch.target)
    return Split(x_train, y_train), Split(x_test, y_test)


def resize(images: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of NHWC images to size x size (numpy only: no TF needed for data)."""
    n, h, w, c = images.shape

    def axis_weights(src: int):
        grid = np.linspace(0, src - 1, size)
        lo = np.floor(grid).astype(int).clip(0, max(src - 2, 0))
        hi = np.minimum(lo + 1, src - 1)
        return lo, hi, (grid - lo).astype(np.float32)

    lo, hi, t = axis_weights(h)
    rows = images[:, lo] * (1 - t)[None, :, None, None] + images[:, hi] * t[None, :, None, None]
    lo, hi, t = axis_weights(w)
    return (rows[:, :, lo] * (1 - t)[None, None, :, None] + rows[:, :, hi] * t[None, None, :, None]).astype(np.float32)


def synthetic_images(count: int, size: int = 299, channels: int = 3, seed: int = 0) -> np.ndarray:
    """Smooth random colour images in [-1, 1] (Inception's input range): low-frequency noise plus
    edges, so activations have the spread of natural images rather than of white noise."""
    rng = np.random.default_rng(seed)
    images = resize(rng.uniform(-1, 1, (count, 8, 8, channels)).astype(np.float32), size)
    grid = np.linspace(0, 7, size)
    edges = np.sign(np.sin(grid[None, :, None, None] * rng.uniform(0.5, 3, (count, 1, 1, 1))))
    images = 0.8 * images + 0.2 * edges.astype(np.float32)
    return np.ascontiguousarray(np.clip(images, -1, 1), dtype=np.float32)
