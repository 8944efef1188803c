"""`KVCodec`: a transformers KV cache <-> bytes, CacheGen-style (see chunk.py and docs/kv-format.md).

    codec = KVCodec(level="good", config=model.config)
    data = codec.encode(outputs.past_key_values)
    cache = codec.decode(data, device="cpu")        # a DynamicCache the model continues from
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ctxzip.errors import BudgetTooSmallError, InvalidBudgetError
from ctxzip.kv.format import KVFormatError
from ctxzip.kv.layout import cache_layers
from ctxzip.kv.levels import LEGACY_LEVELS, TRANSFORM_LEVEL_NUMBERS, resolve_level
from ctxzip.kv.stream import StreamDecoder, encode_stream


@dataclass(frozen=True)
class KVBudget:
    """A size cap for an encoded cache: `bytes=N`, or `ratio=r` of the cache's size in fp16."""

    bytes: int | None = None
    ratio: float | None = None

    def __post_init__(self) -> None:
        if (self.bytes is None) == (self.ratio is None):
            raise InvalidBudgetError("give exactly one of KVBudget(bytes=N) or KVBudget(ratio=r)")
        if self.bytes is not None and (isinstance(self.bytes, bool) or not isinstance(self.bytes, int) or self.bytes < 1):
            raise InvalidBudgetError(f"KVBudget bytes must be a positive int, got {self.bytes!r}")
        if self.ratio is not None and not (isinstance(self.ratio, (int, float)) and 0 < self.ratio <= 1):
            raise InvalidBudgetError(f"KVBudget ratio must be in (0, 1], got {self.ratio!r}")

    def resolve(self, fp16_bytes: int) -> int:
        return self.bytes if self.bytes is not None else int(self.ratio * fp16_bytes)


def as_kv_budget(budget) -> KVBudget:
    """KVBudget as is; ctxzip.Budget(ratio=r) as a ratio against fp16; anything else is refused."""
    if isinstance(budget, KVBudget):
        return budget
    ratio = getattr(budget, "ratio", None)
    if ratio is not None:
        return KVBudget(ratio=ratio)
    raise InvalidBudgetError("a KV cache budget is KVBudget(bytes=N), KVBudget(ratio=r) or Budget(ratio=r); "
                             "token budgets do not apply to KV caches")


def fp16_bytes(cache) -> int:
    """Size of the cache's keys and values stored as fp16: the reference for ratios and bits/value."""
    return sum(2 * (keys.numel() + values.numel()) for keys, values in cache_layers(cache))


class KVCodec:
    """Encode/decode KV caches of decoder models with standard (incl. grouped-query) attention."""

    def __init__(self, level: int | str = "good", chunk_size: int = 256, config=None, layer_scales=None,
                 channel_gains=None, transform=None, recent_tokens: int | None = None) -> None:
        """`layer_scales` [layers, 2]: step multipliers per (layer, key/value), e.g. from
        `sensitivity.step_scales(measure_sensitivity(model, ids))`; default: finer first layers.
        `channel_gains` [layers, 2, kv heads, head dim]: finer steps for the channels attention reads
        most, from `channels.channel_gains(measure_channel_weights(model, ids))`; default: none.
        `transform`: a `KVTransform` (or the name of a shipped one, e.g. "smollm2") for levels 6-10;
        `recent_tokens` overrides how many last tokens those levels keep exact."""
        self.level = resolve_level(level)
        self.chunk_size = chunk_size
        self.config = config
        self.layer_scales = layer_scales
        self.channel_gains = channel_gains
        if isinstance(transform, (str, Path)):
            from ctxzip.kv.transform import load_transform

            transform = load_transform(transform)
        self.transform = transform
        self.recent_tokens = recent_tokens

    @classmethod
    def calibrated(cls, model, input_ids, gain_spread: float = 8.0, **options) -> "KVCodec":
        """A codec whose per-channel steps follow `model`'s query energy and o_proj columns, measured in
        one forward over `input_ids` (typically the text whose cache is encoded); see `channels.py`."""
        from ctxzip.kv.channels import channel_gains, measure_channel_weights

        gains = channel_gains(measure_channel_weights(model, input_ids), spread=gain_spread)
        return cls(config=model.config, channel_gains=gains, **options)

    def encode(self, cache, budget=None, level: int | str | None = None, position_offset: int = 0) -> bytes:
        """The whole stream as bytes; with a budget, the best level whose stream fits it.

        `position_offset`: position of the cache's first token when it continues an earlier one
        (a serving engine's later chunk); it decides which tokens are sinks and how RoPE is undone."""
        if budget is None:
            return b"".join(self._stream(cache, self.level if level is None else level, position_offset))
        cap = as_kv_budget(budget).resolve(fp16_bytes(cache))
        # Within a family levels get smaller as their number grows: binary search for the best that fits.
        order = [0] + list(TRANSFORM_LEVEL_NUMBERS if self.transform is not None else LEGACY_LEVELS[1:])
        low, high, best = 0, len(order) - 1, None
        while low <= high:
            middle = (low + high) // 2
            data = b"".join(self._stream(cache, order[middle], position_offset))
            if len(data) <= cap:
                best, high = data, middle - 1
            else:
                low = middle + 1
        if best is None:
            raise BudgetTooSmallError(f"even the smallest KV level needs more than {cap} bytes")
        return best

    def _stream(self, cache, level, position_offset: int = 0):
        return encode_stream(cache, level, self.chunk_size, self.config, layer_scales=self.layer_scales,
                             channel_gains=self.channel_gains, transform=self.transform,
                             recent_tokens=self.recent_tokens, position_offset=position_offset)

    def decode(self, data: bytes, device: str = "cpu"):
        """A DynamicCache on `device`; raises KVFormatError on any damaged or foreign stream."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise KVFormatError(f"decode expects bytes, got {type(data).__name__}")
        decoder = StreamDecoder(device=device, config=self.config, transform=self.transform)
        decoder.feed(bytes(data))
        return decoder.finish()
