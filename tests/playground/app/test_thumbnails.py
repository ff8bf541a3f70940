"""The datasets' thumbnails: one per built-in dataset, each a true picture of its data."""

import numpy as np
import torch

from core import registry
from playground.app.thumbnails import SIZE, thumbnail, thumbnail_files, thumbnails


def _ink(picture: np.ndarray) -> np.ndarray:
    """How far each pixel is from white, 0..1."""
    return 1 - picture.astype(np.float64).mean(axis=2) / 255


def test_every_built_in_dataset_has_a_thumbnail_in_the_menus_order():
    shown = thumbnails()
    assert [name for _, name in shown] == registry.dataset_names()
    for picture, name in shown:
        assert picture.shape == (SIZE, SIZE, 3) and picture.dtype == np.uint8, name
        assert 0.01 < (_ink(picture) > 0.05).mean() < 0.9, name  # something drawn, not a filled square


def test_a_planes_thumbnail_puts_the_ink_where_the_data_is():
    """The ring of eight Gaussians: ink on the ring at the modes, none in the middle, y upwards."""
    data = registry.load_dataset("eight_gaussians")
    ink = _ink(thumbnail("eight_gaussians"))
    (x0, x1), (y0, y1) = data.bounds

    def pixel(x, y):  # row 0 is the top of the picture
        return int((y1 - y) / (y1 - y0) * SIZE), int((x - x0) / (x1 - x0) * SIZE)

    modes = data.sample(4000, torch.Generator().manual_seed(1)).numpy()
    centre = ink[SIZE // 2 - 3:SIZE // 2 + 3, SIZE // 2 - 3:SIZE // 2 + 3].max()
    top = max((modes[:, 1]).max() - 0.3, 0)  # just inside the topmost mode
    topmost = modes[np.argmax(modes[:, 1])]
    r, c = pixel(topmost[0], top)
    assert centre < 0.05 and ink[max(r - 2, 0):r + 3, max(c - 2, 0):c + 3].max() > 0.3  # y up, as the panels


def test_the_pictures_are_written_once_and_read_back_exactly():
    from PIL import Image

    files = thumbnail_files()
    assert files is thumbnail_files()  # once a process: no tab overwrites the file another reads
    for (path, name), (picture, _) in zip(files, thumbnails()):
        assert np.array_equal(np.asarray(Image.open(path).convert("RGB")), picture), name
