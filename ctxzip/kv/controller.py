"""Bandwidth adaptation (CacheGen): per chunk, the best level that arrives in time, else text.

The controller keeps a plan of when each chunk will have arrived at the current bandwidth estimate.
For each chunk it gives the chunk an equal share of the time left and picks the highest-quality
level whose bytes fit that share; if none does, it sends the chunk's token ids for the receiver to
recompute when that is faster, or else the smallest level. `observe()` updates the bandwidth from
real transfers (exponential average), so a live sender can re-plan as it goes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ctxzip.errors import InvalidInputError
from ctxzip.kv.levels import LEGACY_LEVELS, LEVELS


@dataclass
class ChunkChoice:
    level: int | None  # None: send the tokens as text
    payload: bytes | None
    seconds: float  # estimated transfer (+ recompute) time


@dataclass
class BandwidthController:
    bandwidth: float  # bytes per second, current estimate
    time_budget: float  # seconds for the whole cache
    n_chunks: int
    recompute_seconds_per_token: float = 0.0  # receiver's prefill speed; 0 disables the text fallback
    levels: tuple[int, ...] = tuple(sorted(level for level in LEGACY_LEVELS if level > 0))  # best quality first
    text_bytes_per_token: int = 4
    smoothing: float = 0.5
    elapsed: float = 0.0
    chosen: list = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.bandwidth <= 0 or self.time_budget <= 0 or self.n_chunks < 1:
            raise InvalidInputError("bandwidth, time budget and chunk count must be positive")
        if not self.levels or any(level not in LEVELS for level in self.levels):
            raise InvalidInputError(f"controller levels must be among {sorted(LEVELS)}")

    def observe(self, n_bytes: int, seconds: float) -> None:
        """A measured transfer: fold it into the bandwidth estimate."""
        if n_bytes > 0 and seconds > 0:
            self.bandwidth = (1 - self.smoothing) * self.bandwidth + self.smoothing * n_bytes / seconds

    def choose_for_chunk(self, encode: Callable[[int], bytes], n_tokens: int, can_send_text: bool) -> ChunkChoice:
        """Pick a level for the next chunk; `encode(level)` gives its payload (called lazily)."""
        chunks_left = self.n_chunks - len(self.chosen)
        share = max(self.time_budget - self.elapsed, 0.0) / max(chunks_left, 1)
        smallest = None
        for level in self.levels:
            payload = encode(level)
            seconds = len(payload) / self.bandwidth
            smallest = ChunkChoice(level, payload, seconds)
            if seconds <= share:
                return self._take(smallest)
        if can_send_text and self.recompute_seconds_per_token > 0:
            seconds = n_tokens * (self.text_bytes_per_token / self.bandwidth + self.recompute_seconds_per_token)
            if seconds < smallest.seconds:
                return self._take(ChunkChoice(None, None, seconds))
        return self._take(smallest)

    def _take(self, choice: ChunkChoice) -> ChunkChoice:
        self.elapsed += choice.seconds
        self.chosen.append(choice.level)
        return choice
