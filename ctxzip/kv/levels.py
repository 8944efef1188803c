"""Quality levels: how coarsely each layer's keys and values are quantized.

Steps are fractions of each head's RMS (per chunk), so one level means the same relative precision
for every model. Shallow layers get finer steps (CacheGen: errors there propagate through more
layers). Level 0 is lossless; higher numbers are smaller and lossier.
"""

from __future__ import annotations

from dataclasses import dataclass

from ctxzip.kv.format import KVFormatError


@dataclass(frozen=True)
class Level:
    name: str
    key_step: float = 0.0  # quantization step of keys, as a fraction of the head's RMS
    value_step: float = 0.0
    shallow_fraction: float = 0.2  # this share of the first layers ...
    shallow_scale: float = 0.5  # ... uses steps this many times smaller
    channel_group: int = 8  # channels sharing one symbol table
    anchor_group: int = 8  # tokens per anchor group (the first is the anchor)
    sink_tokens: int = 4  # first tokens of the cache kept exactly (attention sinks)
    lossless: bool = False

    def step_scales(self, n_layers: int) -> list[float]:
        shallow = int(round(self.shallow_fraction * n_layers))
        return [self.shallow_scale if layer < shallow else 1.0 for layer in range(n_layers)]


LEVELS: dict[int, Level] = {
    0: Level("lossless", lossless=True),
    1: Level("high", key_step=0.10, value_step=0.10),
    2: Level("good", key_step=0.20, value_step=0.20),
    3: Level("medium", key_step=0.35, value_step=0.35),
    4: Level("low", key_step=0.6, value_step=0.6),
    5: Level("lowest", key_step=1.0, value_step=1.0),
}
LEVEL_NAMES = {level.name: number for number, level in LEVELS.items()}


def resolve_level(level: int | str) -> int:
    """A level number or name -> its number."""
    if isinstance(level, str):
        if level in LEVEL_NAMES:
            return LEVEL_NAMES[level]
        if level.isdigit():
            level = int(level)
    if isinstance(level, int) and not isinstance(level, bool) and level in LEVELS:
        return level
    raise KVFormatError(f"unknown KV level {level!r}; choose one of {sorted(LEVELS)} or {sorted(LEVEL_NAMES)}")
