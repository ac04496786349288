"""Byte-level text vocabulary shared by IMDB and AAN (LRA's ByteTextEncoder, shifted by one for <mask>).

LRA encodes UTF-8 bytes as byte + 1 with 0 = pad; here id = byte + 2, so 0 = <pad> and 1 = <mask>.
Printable ASCII bytes are named by their character, the others as escapes ("\\x0a").
"""
from __future__ import annotations

import numpy as np

from components.data.contract import MASK, PAD

OFFSET = 2  # ids 0 and 1 are <pad> and <mask>
VOCAB: tuple[str, ...] = (PAD, MASK, *(chr(b) if 0x20 <= b < 0x7F else f"\\x{b:02x}" for b in range(256)))


def encode_bytes(b: bytes, max_length: int) -> np.ndarray:
    """UTF-8 bytes -> token ids (byte + 2), cut to the first `max_length`: (min(len(b), max_length),) int16."""
    return np.frombuffer(b[:max_length], dtype=np.uint8).astype(np.int16) + OFFSET


def meta() -> dict:
    """The vocabulary entries of meta.json for a byte-level task."""
    return {"vocab": list(VOCAB), "pad_id": VOCAB.index(PAD), "mask_id": VOCAB.index(MASK)}
