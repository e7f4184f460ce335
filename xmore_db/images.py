"""Reading images from disk, with one error for every way it can fail."""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from .errors import ImageError, first_line


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

