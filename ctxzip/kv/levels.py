"""Quality levels: how coarsely each layer's keys and values are quantized.

Level 0 is lossless. Levels 1-5 (CacheGen-style, no calibration): steps are fractions of each head's
RMS (per chunk), so one level means the same relative precision for every model; shallow layers get
finer steps (errors there propagate through more layers). Levels 6-10 (transform coding) need a
`KVTransform` calibrated for the model: their steps live in the transform, one per component; the
first `sink_tokens` and the last `recent_tokens` of the cache are kept exact (lossless).
Within each family, higher numbers are smaller and lossier.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ctxzip.kv.format import KVFormatError


@dataclass(frozen=True)
class Level:
    name: str
    step: float = 0.0  # quantization step as a fraction of each head's RMS (before layer scales)
    channel_group: int = 32  # channels sharing one symbol table (tables cost bytes in every chunk)
    anchor_group: int = 8  # tokens per anchor group (the first is the anchor)
    sink_tokens: int = 4  # first tokens of the cache kept in 16 bits (attention sinks)
    lossless: bool = False
    transform: bool = False  # coded with the stream's KVTransform (levels 6-10)
    # last tokens of the cache kept exact (transform levels); 0 by default: on 1,024-token SmolLM2 caches, 16 exact
    # recent tokens cost ~0.19 bits per value at tc-low (1.85-1.91 -> 2.04-2.10) for perplexity changes of
    # -0.3..+0.2 points, within the spread between kinds (eval/results/kv.md)
    recent_tokens: int = 0


LEVELS: dict[int, Level] = {
    0: Level("lossless", lossless=True),
    1: Level("high", step=0.15),
    2: Level("good", step=0.3),
    3: Level("medium", step=0.45),
    4: Level("low", step=0.6),
    5: Level("lowest", step=0.9),
    6: Level("tc-high", transform=True),
    7: Level("tc-good", transform=True),
    8: Level("tc-medium", transform=True),
    9: Level("tc-low", transform=True),
    10: Level("tc-lowest", transform=True),
}
LEGACY_LEVELS = tuple(number for number, level in LEVELS.items() if not level.transform)
TRANSFORM_LEVEL_NUMBERS = tuple(number for number, level in LEVELS.items() if level.transform)
LEVEL_NAMES = {level.name: number for number, level in LEVELS.items()}


def depth_layer_scales(n_layers: int, shallow_fraction: float = 0.2, shallow_scale: float = 0.5) -> torch.Tensor:
    """[layers, 2] step scales without measurements: finer steps in the first layers (CacheGen)."""
    scales = torch.ones(n_layers, 2)
    scales[: int(round(shallow_fraction * n_layers))] = shallow_scale
    return scales


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
