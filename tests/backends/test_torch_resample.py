"""Area resampling on the device equals the host's bit for bit (and PyTorch's own area pooling)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn.functional import adaptive_avg_pool2d

from streamrec.backends.torch import resample as dev
from streamrec.detect import resample as host


@pytest.fixture(scope="module")
def frames(photos) -> np.ndarray:
    """Two real photos cut to one 360x640 size."""
    return np.stack([photos["faces/barack_obama/4.jpg"][:360, :640], photos["scenes/fapi_bbt1.jpg"][:360, :640]])


def test_integral_images_equal_the_hosts_both_ways(frames):
    """OpenCV's integral (the CPU path) and the cumulative-sum scan (the CUDA path, run here on
    the CPU) give the host's exact sums."""
    expected = host.integral_images(frames)
    tensor = torch.from_numpy(frames)
    np.testing.assert_array_equal(dev.integral_images(tensor).numpy(), expected)
    np.testing.assert_array_equal(dev.scan_integral_images(tensor).numpy(), expected)


@pytest.mark.parametrize("size", [(145, 193), (13, 18), (24, 24), (300, 400), (361, 641)])
def test_pyramid_levels_equal_the_hosts_and_area_pooling(frames, size):
    integral = dev.integral_images(torch.from_numpy(frames))
    windows = dev.frame_windows(360, 640, *size, torch.device("cpu"))
    ours = dev.resample_frames(integral, windows).numpy()
    np.testing.assert_array_equal(ours, host.resample_frames(host.integral_images(frames), *size))
    pooled = adaptive_avg_pool2d(torch.from_numpy(frames).permute(0, 3, 1, 2).float(), size)
    np.testing.assert_array_equal(ours, pooled.permute(0, 2, 3, 1).numpy())


def test_regions_of_several_frames_equal_the_hosts(frames):
    rng = np.random.default_rng(7)
    k = 200
    side = rng.integers(1, 200, k)
    y0, x0 = rng.integers(0, 360 - side), rng.integers(0, 640 - side - 2)
    regions = np.stack([y0, x0, y0 + side, x0 + side + rng.integers(0, 3, k)], axis=1)
    frame = rng.integers(0, 2, k)
    integral = host.integral_images(frames)
    for size in (24, 48):
        expected = host.resample_regions(integral, frame, regions, size, size)
        ours = dev.resample_regions(
            torch.from_numpy(integral), torch.from_numpy(frame), torch.from_numpy(regions), size, size
        )
        np.testing.assert_array_equal(ours.numpy(), expected)
