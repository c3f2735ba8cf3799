import numpy as np

from itexlab.measure import datasets


def test_synthetic_images_are_contiguous_float32_in_inception_range():
    # A strided sample made every executor call copy its input (0.5 ms of a 16 ms Inception run).
    images = datasets.synthetic_images(3, size=32, seed=1)
    assert images.shape == (3, 32, 32, 3) and images.dtype == np.float32
    assert images.flags["C_CONTIGUOUS"]
    assert images.min() >= -1 and images.max() <= 1 and images.std() > 0.1
