"""Labelled still images in a `class/image` folder tree (macro-expression data, FER sets).

::

    root/
      happiness/  001.png  002.jpg ...
      surprise/   a.bmp ...

One sub-folder per class (its name is the label); image files directly inside it. Hidden
files and folders (names starting with '.') and files of other types are ignored; loose
files in `root` itself are not images of any class and are ignored too. Faces should be
cropped already (the images are only resized, as the apex_frame representation does
without alignment).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from microexpr.data.images import read_image as read_file
from microexpr.data.images import resize
from microexpr.errors import ConfigError, DatasetError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".pgm", ".ppm", ".webp")


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def list_image_folder(root: str | Path) -> tuple[list[Path], list[str], tuple[str, ...]]:
    """(image files, their labels, the sorted classes) of a `class/image` tree; no reading.

    DatasetError when `root` is missing, has no class folders, a class folder holds no
    images, or there are fewer than 2 classes.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"image folder {root} does not exist or is not a folder; pass a "
                           f"folder holding one sub-folder of images per class")
    folders = sorted((p for p in root.iterdir() if p.is_dir() and _visible(p)),
                     key=lambda p: p.name)
    kinds = ", ".join(IMAGE_EXTENSIONS)
    if not folders:
        loose = [p for p in root.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS]
        hint = (f" ({len(loose)} images lie directly in it: move them into one folder per "
                f"class)" if loose else "")
        raise DatasetError(f"image folder {root} is empty: it needs one sub-folder per class "
                           f"(root/<class>/<image>){hint}")
    files: list[Path] = []
    labels: list[str] = []
    for folder in folders:
        images = sorted(p for p in folder.iterdir()
                        if p.is_file() and _visible(p) and p.suffix.lower() in IMAGE_EXTENSIONS)
        if not images:
            raise DatasetError(f"class folder {folder} holds no images ({kinds}); remove it or "
                               f"add its images")
        files.extend(images)
        labels.extend([folder.name] * len(images))
    classes = tuple(folder.name for folder in folders)
    if len(classes) < 2:
        raise DatasetError(f"image folder {root} has only the class {classes[0]!r}; a "
                           f"classifier needs at least 2 class folders")
    return files, labels, classes


def read_image(path: str | Path, size: int | tuple[int, int], color: bool = False
               ) -> np.ndarray:
    """One image as float32 H x W x 1 (gray) or H x W x 3 (RGB), values 0..255, resized.

    DatasetError naming the file when it cannot be decoded.
    """
    image = read_file(path, color)
    image = resize(image, size)
    return (image[..., None] if image.ndim == 2 else image).astype(np.float32)


def read_image_folder(root: str | Path, size: int | tuple[int, int], color: bool = False
                      ) -> tuple[np.ndarray, list[str], tuple[str, ...]]:
    """Read every image of a `class/image` tree.

    Returns (x, labels, classes): x is N x H x W x C float32 in 0..255 (C = 1 gray, 3 with
    `color`), each image resized to `size` (an int for size x size, or (height, width));
    labels the class folder name of each image; classes the sorted class names. Images are
    in class order, then file name order.
    """
    height, width = (size, size) if isinstance(size, int | np.integer) else tuple(size)
    height, width = int(height), int(width)
    if min(height, width) < 1:
        raise ConfigError(f"size must be positive, got {size}")
    files, labels, classes = list_image_folder(root)
    x = np.empty((len(files), height, width, 3 if color else 1), dtype=np.float32)
    for i, path in enumerate(files):
        x[i] = read_image(path, (height, width), color)
    return x, labels, classes
