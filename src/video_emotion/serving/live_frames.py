"""The frames of a live session: one JPEG a message, checked from its header before it is decoded.

A frame that cannot be read is the client's fault (`BadFrame`: answered with an error, the session goes on);
any other failure while reading one is the server's.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's frame header without decoding it; None if it is not a JPEG."""
    if data[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        length = int.from_bytes(data[i + 2:i + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # a start-of-frame segment
            return int.from_bytes(data[i + 7:i + 9], "big"), int.from_bytes(data[i + 5:i + 7], "big")
        i += 2 + length
    return None


class BadFrame(ValueError):
    """A frame the client sent that cannot be read (its fault, answered with an error; the session goes on)."""


def decode_frame(data: bytes, limits: Any) -> np.ndarray:
    """A BGR frame from a JPEG message; `BadFrame` with a message for the client otherwise."""
    import cv2

    if len(data) > limits.max_frame_bytes:
        raise BadFrame(f"frame over {limits.max_frame_bytes >> 20} MiB")
    size = jpeg_size(data)
    if size is None:
        raise BadFrame("not a JPEG image")
    if max(size) > limits.max_side or min(size) < 16:
        raise BadFrame(f"frame is {size[0]}x{size[1]}; send 16 to {limits.max_side} pixels a side")
    frame = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if frame is None:
        raise BadFrame("the JPEG could not be decoded")
    return frame
