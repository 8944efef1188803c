"""ctxzip as an LMCache serde (LMCache v1 distributed storage: `Serializer` / `Deserializer`).

Imported only where `lmcache` is installed; `register()` in `__init__` adds the "ctxzip" type to
LMCache's serde factory so an L2 adapter config can name it:

    {"type": "fs", "base_path": "/cache", "serde": {"type": "ctxzip", "level": "tc-medium", "transform": "smollm2",
                                                    "kv_heads": 3}}
"""

from __future__ import annotations

import torch
from lmcache.v1.distributed.api import MemoryLayoutDesc, ObjectKey
from lmcache.v1.distributed.serde.async_processor import AsyncSerdeProcessor
from lmcache.v1.distributed.serde.base import Deserializer, SerdeProcessor, Serializer
from lmcache.v1.memory_management import MemoryObj

from lmcache_ctxzip.kv_layout import decode_chunk, encode_chunk
from lmcache_ctxzip.options import SerdeOptions


class CtxzipSerializer(Serializer):
    """KV chunk [2, L, T, H*D] -> one ctxzip stream written into the destination byte buffer."""

    def __init__(self, options: SerdeOptions) -> None:
        self.options = options
        self.codec = options.codec()

    def serialize(self, src: MemoryObj, dst: MemoryObj, key: ObjectKey) -> int:
        positions = getattr(src.meta, "cached_positions", None)
        offset = int(positions[0]) if positions is not None and len(positions) else 0
        data = encode_chunk(self.codec, src.tensor, self.options.kv_heads, position_offset=offset)
        buffer = dst.tensor.reshape(-1)
        if len(data) > buffer.numel():
            raise ValueError(f"ctxzip stream of {len(data)} bytes exceeds the {buffer.numel()}-byte buffer")
        buffer[: len(data)].copy_(torch.frombuffer(bytearray(data), dtype=torch.uint8))
        return len(data)

    def estimate_serialized_size(self, layout_desc: MemoryLayoutDesc) -> int:
        raw = sum(shape.numel() * dtype.itemsize for shape, dtype in zip(layout_desc.shapes, layout_desc.dtypes))
        return self.options.size_bound(raw)


class CtxzipDeserializer(Deserializer):
    """ctxzip stream bytes -> the KV chunk, in the destination's dtype and shape."""

    def __init__(self, options: SerdeOptions) -> None:
        self.codec = options.codec()

    def deserialize(self, src: MemoryObj, dst: MemoryObj, key: ObjectKey) -> None:
        data = src.tensor.reshape(-1).cpu().numpy().tobytes()
        decode_chunk(self.codec, data, dst.tensor)


def create_serde(kwargs: dict) -> SerdeProcessor:
    options = SerdeOptions.from_kwargs(kwargs)
    return AsyncSerdeProcessor(CtxzipSerializer(options), CtxzipDeserializer(options), max_workers=options.max_workers)
