"""The `spixwalk.jpeg` Zarr v3 codec: one JPEG per (1, H, W, 3) or (1, H, W) uint8 chunk.

Kept free of project imports: zarr loads it through the `zarr.codecs` entry point declared in
pyproject.toml, so plain `zarr` (and dask.array) read a store without importing spixwalk.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from zarr.abc.codec import ArrayBytesCodec

NAME = "spixwalk.jpeg"


def decode(data: np.ndarray) -> np.ndarray:
    """JPEG bytes -> uint8 (H, W, 3) RGB or (H, W): imagecodecs where installed, else OpenCV's decoder (both
    libjpeg-turbo; a bare GPU node has OpenCV but not imagecodecs, whose wheel is 26 MB)."""
    try:
        import imagecodecs
    except ImportError:
        import cv2

        img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
        if img is None:
            raise ValueError("OpenCV could not decode a JPEG chunk")
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB) if img.ndim == 3 else img
    return imagecodecs.jpeg8_decode(data)


@dataclass(frozen=True)
class JpegCodec(ArrayBytesCodec):
    """Array -> JPEG bytes for uint8 (1, H, W, 3) or (1, H, W) chunks (imagecodecs' libjpeg-turbo)."""

    is_fixed_size = False
    quality: int = 90

    @classmethod
    def from_dict(cls, data):
        return cls(**(data.get("configuration") or {}))

    def to_dict(self):
        return {"name": NAME, "configuration": {"quality": self.quality}}

    def _decode_sync(self, chunk_bytes, chunk_spec):
        img = decode(chunk_bytes.as_numpy_array())
        return chunk_spec.prototype.nd_buffer.from_ndarray_like(img.reshape(chunk_spec.shape))

    def _encode_sync(self, chunk_array, chunk_spec):
        import imagecodecs

        a = chunk_array.as_numpy_array()
        img = a.reshape(a.shape[-3:]) if a.ndim == 4 else a.reshape(a.shape[-2:])
        enc = imagecodecs.jpeg8_encode(np.ascontiguousarray(img), level=self.quality)
        return chunk_spec.prototype.buffer.from_bytes(enc)

    async def _decode_single(self, chunk_bytes, chunk_spec):
        return self._decode_sync(chunk_bytes, chunk_spec)

    async def _encode_single(self, chunk_array, chunk_spec):
        return self._encode_sync(chunk_array, chunk_spec)

    def compute_encoded_size(self, input_byte_length, chunk_spec):
        raise NotImplementedError  # variable size
