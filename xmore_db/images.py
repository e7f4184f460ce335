"""Reading images from disk, with one error for every way it can fail."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Union

from PIL import Image, UnidentifiedImageError

from .errors import ImageError, first_line

if TYPE_CHECKING:
    import numpy


def load_image(path: str | os.PathLike[str]) -> Image.Image:
    """The image at `path`, fully decoded and in RGB.

    Decoding happens here, so a truncated or corrupt file fails now rather
    than halfway through a batch. Raises ImageError:
    "cannot read image <path>: <short reason>".
    """
    path = Path(path)
    try:
        with Image.open(path) as image:
            image.load()
            return image.convert("RGB")
    except FileNotFoundError:
        reason = "no such file"
    except IsADirectoryError:
        reason = "it is a directory"
    except PermissionError:
        reason = "permission denied"
    except UnidentifiedImageError:
        reason = "not an image format Pillow can read"
    except Image.DecompressionBombError as e:
        reason = f"too large to decode safely ({first_line(e)})"
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        # Pillow reports truncated and corrupt data as OSError (and a few plugins
        # as SyntaxError or ValueError).
        reason = f"corrupt or truncated image data ({first_line(e) or type(e).__name__})"
    raise ImageError(f"cannot read image {path}: {reason}")



# What the Python API takes as an image: a file path, a PIL image, or an (H, W, 3) array (uint8, or floats in [0, 1]).
ImageInput = Union[str, os.PathLike, Image.Image, "numpy.ndarray"]


def as_pil(image: ImageInput) -> Image.Image:
    """An RGB PIL image from a path, a PIL image or an array; ImageError for anything else."""
    if isinstance(image, Image.Image):
        return image.convert("RGB") if image.mode != "RGB" else image
    if isinstance(image, (str, os.PathLike)):
        return load_image(image)
    import numpy as np

    if isinstance(image, np.ndarray):
        array = image
        if array.ndim == 2:
            array = np.stack([array] * 3, axis=-1)
        if array.ndim != 3 or array.shape[-1] not in (3, 4):
            raise ImageError(f"an image array must be (H, W, 3), got shape {image.shape}")
        if array.dtype != np.uint8:
            if not np.issubdtype(array.dtype, np.floating) or np.nanmin(array) < 0 or np.nanmax(array) > 1:
                raise ImageError("an image array must be uint8, or floats in [0, 1]")
            array = (array * 255).round().astype(np.uint8)
        return Image.fromarray(np.ascontiguousarray(array[..., :3]), "RGB")
    raise ImageError(f"cannot use a {type(image).__name__} as an image: give a path, a PIL image or an array")
