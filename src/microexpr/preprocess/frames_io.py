"""Reading frames from disk with errors that name the file."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from microexpr.errors import DatasetError


def read_gray(path: str | Path) -> np.ndarray:
    """Read an image file as a uint8 grayscale array; DatasetError names unreadable files."""
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        hint = "it does not exist" if not Path(path).exists() else "it is not a readable image"
        raise DatasetError(f"cannot read frame {path}: {hint}")
    return image


def resize(image: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Resize to size x size (or (height, width)); area averaging when shrinking."""
    height, width = (size, size) if isinstance(size, int) else size
    if image.shape[:2] == (height, width):
        return image
    shrink = height < image.shape[0] or width < image.shape[1]
    interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interpolation)
