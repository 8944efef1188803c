"""The byte layout of a KV stream: magic, version, then CRC-checked frames (see docs/kv-format.md).

    stream  = b"CZKV" version:u8 frame*
    frame   = kind:u8 seq:u32 length:u32 payload[length] crc32:u32     (little endian)

`seq` counts frames from 0 so a reordered or missing frame is caught; the CRC covers kind, seq,
length and payload, so any single changed byte is caught; the END frame repeats the totals so a
stream cut at a frame boundary is caught too.
"""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from dataclasses import dataclass

from ctxzip.errors import CtxzipError

MAGIC = b"CZKV"
VERSION = 2
READABLE_VERSIONS = (1, 2)  # version 1 streams (no transform, constriction-coded chunks) still decode

FRAME_HEADER = ord("H")
FRAME_CHUNK = ord("C")
FRAME_TEXT = ord("T")  # token ids the receiver recomputes instead of receiving their KV
FRAME_END = ord("E")
FRAME_KINDS = {FRAME_HEADER, FRAME_CHUNK, FRAME_TEXT, FRAME_END}

_FRAME_PREFIX = struct.Struct("<BII")
MAX_FRAME_BYTES = 1 << 30

DTYPE_CODES = {"float16": 1, "bfloat16": 2, "float32": 3}
DTYPE_NAMES = {code: name for name, code in DTYPE_CODES.items()}


class KVFormatError(CtxzipError, ValueError):
    """A KV stream is malformed, truncated, reordered, corrupted, or made for another model."""


@dataclass(frozen=True)
class StreamHeader:
    """What a decoder must know before the first chunk: geometry, dtype, chunking, origin."""

    n_layers: int
    n_heads: int  # key/value heads (after GQA grouping)
    head_dim: int
    dtype: str
    chunk_size: int
    level: int  # the default level; a chunk frame may name another one
    n_tokens: int
    batch: int = 1
    fingerprint: bytes = bytes(8)  # model fingerprint, zeros when the encoder was given no config
    transform_id: bytes = bytes(8)  # version 2: the KVTransform the chunks need, zeros for none
    position_offset: int = 0  # version 2: position of the cache's first token (RoPE is undone relative to it)
    version: int = VERSION

    _LAYOUT = struct.Struct("<HHHBIBIH8s")
    _LAYOUT_V2 = struct.Struct("<8sI")

    def pack(self) -> bytes:
        head = self._LAYOUT.pack(self.n_layers, self.n_heads, self.head_dim, DTYPE_CODES[self.dtype],
                                 self.chunk_size, self.level, self.n_tokens, self.batch, self.fingerprint)
        return head + self._LAYOUT_V2.pack(self.transform_id, self.position_offset)

    @classmethod
    def unpack(cls, payload: bytes, version: int = VERSION) -> "StreamHeader":
        size = cls._LAYOUT.size + (cls._LAYOUT_V2.size if version >= 2 else 0)
        if len(payload) != size:
            raise KVFormatError(f"header frame has {len(payload)} bytes, expected {size} (version {version})")
        layers, heads, dim, dtype, chunk, level, tokens, batch, fp = cls._LAYOUT.unpack_from(payload)
        transform_id, offset = bytes(8), 0
        if version >= 2:
            transform_id, offset = cls._LAYOUT_V2.unpack_from(payload, cls._LAYOUT.size)
        if dtype not in DTYPE_NAMES:
            raise KVFormatError(f"unknown dtype code {dtype} in header")
        if min(layers, heads, dim, chunk, batch) == 0:
            raise KVFormatError("header has a zero dimension")
        return cls(layers, heads, dim, DTYPE_NAMES[dtype], chunk, level, tokens, batch, fp, transform_id, offset,
                   version)

    @property
    def geometry(self) -> tuple[int, int, int]:
        return (self.n_layers, self.n_heads, self.head_dim)


def config_geometry(config) -> tuple[int, int, int]:
    """(layers, key/value heads, head dim) from a transformers config, with the usual fallbacks."""
    config = getattr(config, "get_text_config", lambda: config)()
    layers = config.num_hidden_layers
    heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    return int(layers), int(heads), int(head_dim)


def model_fingerprint(config) -> bytes:
    """8 bytes naming a model family and shape, so a cache is not decoded into another model."""
    text_config = getattr(config, "get_text_config", lambda: config)()
    fields = {name: getattr(text_config, name, None) for name in (
        "model_type", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim",
        "hidden_size", "intermediate_size", "vocab_size", "rope_theta", "max_position_embeddings")}
    fields["rope"] = str(getattr(text_config, "rope_parameters", None) or getattr(text_config, "rope_scaling", None))
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).digest()[:8]


def stream_prefix() -> bytes:
    return MAGIC + bytes([VERSION])


def pack_frame(kind: int, seq: int, payload: bytes) -> bytes:
    head = _FRAME_PREFIX.pack(kind, seq, len(payload))
    crc = zlib.crc32(payload, zlib.crc32(head))
    return head + payload + struct.pack("<I", crc)


class FrameReader:
    """Cuts bytes arriving in any pieces into checked frames, in order.

    `feed(data)` returns the complete frames now available as (kind, payload) pairs, raising
    KVFormatError on a bad magic, version, CRC or sequence number.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._prefix_seen = False
        self._next_seq = 0
        self.version = VERSION

    @property
    def pending_bytes(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buffer += data
        frames = []
        if not self._prefix_seen:
            if len(self._buffer) < len(MAGIC) + 1:
                if not MAGIC.startswith(bytes(self._buffer[: len(MAGIC)])):
                    raise KVFormatError("not a ctxzip KV stream (bad magic)")
                return frames
            if bytes(self._buffer[:4]) != MAGIC:
                raise KVFormatError("not a ctxzip KV stream (bad magic)")
            if self._buffer[4] not in READABLE_VERSIONS:
                raise KVFormatError(f"KV stream version {self._buffer[4]} is not supported "
                                    f"(this decoder reads versions {READABLE_VERSIONS})")
            self.version = self._buffer[4]
            del self._buffer[:5]
            self._prefix_seen = True
        while len(self._buffer) >= _FRAME_PREFIX.size:
            kind, seq, length = _FRAME_PREFIX.unpack_from(self._buffer)
            if kind not in FRAME_KINDS:
                raise KVFormatError(f"corrupted KV stream: unknown frame kind {kind} at frame {self._next_seq}")
            if length > MAX_FRAME_BYTES:
                raise KVFormatError(f"corrupted KV stream: frame {self._next_seq} claims {length} bytes")
            end = _FRAME_PREFIX.size + length + 4
            if len(self._buffer) < end:
                break
            body = bytes(self._buffer[: end - 4])
            (crc,) = struct.unpack_from("<I", self._buffer, end - 4)
            if zlib.crc32(body) != crc:
                raise KVFormatError(f"corrupted KV stream: CRC mismatch in frame {self._next_seq}")
            if seq != self._next_seq:
                raise KVFormatError(f"KV stream out of order: got frame {seq}, expected {self._next_seq}")
            self._next_seq += 1
            del self._buffer[:end]
            frames.append((kind, body[_FRAME_PREFIX.size:]))
        return frames
