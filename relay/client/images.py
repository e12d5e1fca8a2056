"""JPEG encoding and decoding with OpenCV, imported only when images are used.

The client itself moves bytes; numpy and OpenCV are loaded the first time a
caller hands it an image array or asks a frame for one, so a phone that already
has JPEG bytes never pays for them.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

Image = NDArray[np.uint8]
"""An OpenCV image: height × width × 3 (BGR) or height × width (grey), uint8."""


def encode_jpeg(image: Any, quality: int = 80) -> bytes:
    """``image`` (a numpy array as OpenCV uses) as JPEG bytes at ``quality`` (1–100)."""
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be between 1 and 100, got {quality}")
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim not in (2, 3) or array.size == 0:
        raise ValueError(f"expected a non-empty uint8 image of 2 or 3 dimensions, got {array.dtype} {array.shape}")
    ok, encoded = cv2.imencode(".jpg", array, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"OpenCV could not encode an image of shape {array.shape} as JPEG")
    return bytes(encoded.tobytes())


def decode_jpeg(data: bytes) -> Image:
    """JPEG (or PNG, …) bytes as a BGR image; ValueError if they are not an image."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{len(data)} bytes are not an image OpenCV can decode")
    return np.asarray(image, dtype=np.uint8)
