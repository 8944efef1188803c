"""The serde's settings, as an LMCache config's "serde" dict gives them (everything but "type")."""

from __future__ import annotations

from dataclasses import dataclass

from ctxzip.errors import InvalidInputError


@dataclass(frozen=True)
class SerdeOptions:
    kv_heads: int  # key/value heads of the model (LMCache's hidden dim is kv_heads * head_dim)
    level: str = "tc-medium"
    transform: str | None = "smollm2"  # a shipped transform name or an .npz path; None for levels 0-5
    chunk_size: int = 256  # ctxzip frame size in tokens (an LMCache chunk is usually 256 tokens: one frame)
    recent_tokens: int = 0  # LMCache stores chunks apart: no chunk knows it holds a prompt's last tokens
    max_workers: int = 1

    @classmethod
    def from_kwargs(cls, kwargs: dict) -> "SerdeOptions":
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise InvalidInputError(f"unknown ctxzip serde options {unknown}; known: {sorted(known)}")
        if "kv_heads" not in kwargs:
            raise InvalidInputError("the ctxzip serde needs kv_heads (the model's key/value heads)")
        values = dict(kwargs)
        for name in ("kv_heads", "chunk_size", "recent_tokens", "max_workers"):
            if name in values:
                values[name] = int(values[name])
        return cls(**values)

    def codec(self):
        from ctxzip.kv import KVCodec

        return KVCodec(level=self.level, chunk_size=self.chunk_size, transform=self.transform,
                       recent_tokens=self.recent_tokens)

    def size_bound(self, raw_bytes: int) -> int:
        """Upper bound of a stream for a chunk of `raw_bytes`: escapes may cost 48 bits per value in the worst case."""
        return 3 * raw_bytes + (1 << 16)
