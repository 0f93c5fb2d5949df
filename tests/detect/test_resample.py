"""Area resampling must equal PyTorch's interpolate(mode="area") bit for bit (the published
MTCNN ran on it), on one thread or split between several."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from torch.nn.functional import interpolate

from streamrec.detect.resample import integral_images, resample_frames, resample_regions
from streamrec.images import load_image


def _reference(patch: np.ndarray, h: int, w: int) -> np.ndarray:
    tensor = torch.from_numpy(np.ascontiguousarray(patch)).permute(0, 3, 1, 2).float()
    return interpolate(tensor, size=(h, w), mode="area").permute(0, 2, 3, 1).numpy()


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("size", [(145, 193), (13, 18), (24, 24), (300, 400), (481, 641)])
def test_frames_equal_torch_area(faces_dir, size, threads):
    photos = [faces_dir / "barack_obama" / "4.jpg", faces_dir / "kit_harington" / "2.jpg"]
    frames = np.stack([cv2.resize(load_image(p).rgb, (640, 360)) for p in photos])
    ours = resample_frames(integral_images(frames), *size, threads=threads)  # 300 rows and more: 3 parts
    assert ours.dtype == np.float32
    np.testing.assert_array_equal(ours, _reference(frames, *size))


@pytest.mark.parametrize("threads", [1, 3])
def test_regions_equal_torch_area_on_crops(faces_dir, threads):
    image = load_image(faces_dir / "rose_leslie" / "2.jpg").rgb
    rng = np.random.default_rng(3)
    h, w, _ = image.shape
    k = 100  # 3 parts on 3 threads
    y0 = rng.integers(0, h - 40, k)
    x0 = rng.integers(0, w - 40, k)
    side = rng.integers(1, 39, k)
    regions = np.stack([y0, x0, y0 + side, x0 + side + rng.integers(0, 2, k)], axis=1)
    for size in (24, 48):
        ours = resample_regions(integral_images(image[None]), np.zeros(k, int), regions, size, size, threads=threads)
        for i, (a, b, c, d) in enumerate(regions):
            np.testing.assert_array_equal(ours[i], _reference(image[None, a:c, b:d], size, size)[0])
