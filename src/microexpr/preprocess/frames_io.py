"""Reading images from disk (errors name the file) and resizing them."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from microexpr.errors import DatasetError


def read_image(path: str | Path, color: bool = False, what: str = "image") -> np.ndarray:
    """An image file as uint8 gray (H x W) or RGB (H x W x 3); DatasetError names the file
    (`what` it is: "image", "frame")."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR if color else cv2.IMREAD_GRAYSCALE)
    if image is None:
        hint = "it does not exist" if not Path(path).exists() else "it is not a readable image"
        raise DatasetError(f"cannot read {what} {path}: {hint}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if color else image


def resize(image: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Resize to size x size (or (height, width)); area averaging when shrinking."""
    height, width = (size, size) if isinstance(size, int) else size
    if image.shape[:2] == (height, width):
        return image
    shrink = height < image.shape[0] or width < image.shape[1]
    interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interpolation)
