"""Streaming: `encode_stream(cache)` yields frames; `StreamDecoder` grows a DynamicCache as they arrive."""

from __future__ import annotations

import struct
from typing import Iterator

import numpy as np
import torch

from ctxzip.kv.channels import rows_of
from ctxzip.kv.chunk import StreamContext, chunk_span, decode_chunk, encode_chunk, encode_exact_chunk, encode_transform_chunk
from ctxzip.kv.format import (
    FRAME_CHUNK, FRAME_END, FRAME_HEADER, FRAME_TEXT, FrameReader, KVFormatError, StreamHeader,
    config_geometry, model_fingerprint, pack_frame, stream_prefix,
)
from ctxzip.kv.layout import DTYPES, SUPPORTED_DTYPES, cache_layers, cache_to_rows
from ctxzip.kv.levels import LEVELS, depth_layer_scales, resolve_level

_END = struct.Struct("<II")  # chunks (KV or text), tokens
_TEXT = struct.Struct("<II")  # token_start, n_tokens; then int32 token ids


def _regions(tokens: int, chunk_size: int, sink: int, recent: int) -> list[tuple[int, int, bool]]:
    """(start, stop, exact) frames of a transform level: sink tokens, middle chunks, recent tokens."""
    sink = min(sink, tokens)
    recent = min(recent, tokens - sink)
    out = []
    for start, stop, exact in ((0, sink, True), (sink, tokens - recent, False), (tokens - recent, tokens, True)):
        out += [(a, min(a + chunk_size, stop), exact) for a in range(start, stop, chunk_size)]
    return out


def encode_stream(cache, level: int | str = "good", chunk_size: int = 256, config=None, controller=None,
                  token_ids=None, layer_scales=None, channel_gains=None, transform=None, position_offset: int = 0,
                  recent_tokens: int | None = None) -> Iterator[bytes]:
    """Frames of an encoded cache: prefix + header first, one frame per chunk of tokens, then END.

    With a `controller` (see `controller.py`) the level is chosen per chunk, and a chunk may be sent
    as its token ids (`token_ids`, 1-D) for the receiver to recompute. `layer_scales` [layers, 2]
    scales the steps per (layer, key/value), e.g. from `sensitivity.step_scales`; by default the
    first layers get finer steps. `channel_gains` [layers, 2, kv heads, head dim] (from
    `channels.channel_gains`) refines the steps per channel.

    Levels 6-10 need `transform` (a `KVTransform` calibrated for the model); the cache's first token
    sits at `position_offset` (RoPE is undone relative to it); `recent_tokens` overrides the level's
    count of last tokens kept exact. Lossless (level 0) uses the version 2 exponent model.
    """
    level_id = resolve_level(level)
    if not isinstance(chunk_size, int) or chunk_size < 1 or chunk_size > 65535:
        raise KVFormatError(f"chunk_size must be an int in 1..65535, got {chunk_size!r}")
    rows, (n_layers, batch, heads, dim) = cache_to_rows(cache)
    tokens = rows.shape[1]
    if config is not None and config_geometry(config) != (n_layers, heads, dim):
        raise KVFormatError(f"cache geometry {(n_layers, heads, dim)} does not match the model config "
                            f"{config_geometry(config)} (layers, kv heads, head dim)")
    if token_ids is not None:
        token_ids = torch.as_tensor(token_ids).reshape(-1)
        if token_ids.numel() != tokens:
            raise KVFormatError(f"token_ids has {token_ids.numel()} ids for a cache of {tokens} tokens")
    layer_scales = depth_layer_scales(n_layers) if layer_scales is None else torch.as_tensor(layer_scales).float()
    if layer_scales.shape != (n_layers, 2) or not torch.isfinite(layer_scales).all() or (layer_scales <= 0).any():
        raise KVFormatError(f"layer_scales must be positive, shaped ({n_layers}, 2)")
    gains = None
    if channel_gains is not None:
        channel_gains = torch.as_tensor(channel_gains).float()
        if channel_gains.shape != (n_layers, 2, heads, dim) or not (channel_gains > 0).all():
            raise KVFormatError(f"channel_gains must be positive, shaped ({n_layers}, 2, {heads}, {dim})")
        gains = rows_of(channel_gains, batch)
    level_spec = LEVELS[level_id]
    if level_spec.transform and transform is None:
        raise KVFormatError(f"level {level_id} ({level_spec.name}) needs a KVTransform calibrated for the model")
    if transform is not None and transform.geometry != (n_layers, heads, dim):
        raise KVFormatError(f"the KV transform {transform.name} is for geometry {transform.geometry}, "
                            f"the cache has {(n_layers, heads, dim)}")
    if not isinstance(position_offset, int) or not 0 <= position_offset < 2 ** 32:
        raise KVFormatError(f"position_offset must be an int in 0..2**32-1, got {position_offset!r}")
    header = StreamHeader(n_layers, heads, dim, SUPPORTED_DTYPES[rows.dtype], chunk_size, level_id, tokens,
                          batch, model_fingerprint(config) if config is not None else bytes(8),
                          transform.transform_id if transform is not None else bytes(8), position_offset)
    yield stream_prefix() + pack_frame(FRAME_HEADER, 0, header.pack())
    seq = 1
    if level_spec.transform or (level_spec.lossless and controller is None):
        context = StreamContext(2, n_layers, batch, heads, transform, position_offset)
        recent = level_spec.recent_tokens if recent_tokens is None else recent_tokens
        # sink tokens are the first tokens of the whole sequence: a cache that starts later has none
        sink = max(0, level_spec.sink_tokens - position_offset)
        plan = (_regions(tokens, chunk_size, sink, recent) if level_spec.transform
                else [(a, min(a + chunk_size, tokens), True) for a in range(0, tokens, chunk_size)])
        for start, stop, exact in plan:
            piece = rows[:, start:stop]
            if exact:
                payload = encode_exact_chunk(piece, start, level_id, batch * heads, sixteen_bit=not level_spec.lossless)
            else:
                payload = encode_transform_chunk(piece, start, level_id, context)
            yield pack_frame(FRAME_CHUNK, seq, payload)
            seq += 1
        yield pack_frame(FRAME_END, seq, _END.pack(seq - 1, tokens))
        return
    sink = level_spec.sink_tokens
    for start in range(0, tokens, chunk_size):
        piece = rows[:, start:start + chunk_size]
        chunk_sink = max(0, sink - start)
        if controller is None:
            payload = encode_chunk(piece, start, level_id, layer_scales, chunk_sink, gains)
            kind = FRAME_CHUNK
        else:
            choice = controller.choose_for_chunk(
                lambda lvl: encode_chunk(piece, start, lvl, layer_scales, max(0, LEVELS[lvl].sink_tokens - start), gains),
                n_tokens=piece.shape[1], can_send_text=token_ids is not None)
            if choice.level is None:
                ids = token_ids[start:start + chunk_size].numpy().astype("<i4")
                payload, kind = _TEXT.pack(start, ids.size) + ids.tobytes(), FRAME_TEXT
            else:
                payload, kind = choice.payload, FRAME_CHUNK
        yield pack_frame(kind, seq, payload)
        seq += 1
    yield pack_frame(FRAME_END, seq, _END.pack(seq - 1, tokens))


class StreamDecoder:
    """Feed stream bytes in any pieces; chunks are decoded as soon as they are complete.

    Decoded tokens go into one buffer allocated from the header (no re-copying as the cache grows);
    `cache` is a DynamicCache over the tokens decoded so far. `config` (a model config) makes the
    decoder refuse streams of another geometry or model; `model` lets it recompute chunks the
    sender sent as text.
    """

    def __init__(self, device: str = "cpu", config=None, model=None, transform=None) -> None:
        self.device = device
        self.transform = transform  # the KVTransform that transform-coded streams name (by id)
        self.config = config if config is not None else getattr(model, "config", None)
        self.model = model
        self.header: StreamHeader | None = None
        self.tokens = 0
        self.chunks = 0
        self.complete = False
        self._reader = FrameReader()
        self._buffer: torch.Tensor | None = None  # [layers, 2, batch, heads, tokens, head_dim]
        self._context: StreamContext | None = None

    @property
    def cache(self):
        """A DynamicCache with the tokens decoded so far (views into the decoder's buffer)."""
        from transformers import DynamicCache

        cache = DynamicCache()
        if self._buffer is not None:
            for layer in range(self.header.n_layers):
                keys, values = self._buffer[layer, 0, :, :, : self.tokens], self._buffer[layer, 1, :, :, : self.tokens]
                cache.update(keys[..., :0, :], values[..., :0, :], layer)  # creates the layer without copying
                cache.layers[layer].keys, cache.layers[layer].values = keys, values  # update() would concatenate
        return cache

    def feed(self, data: bytes) -> int:
        """Add bytes; returns how many tokens were decoded from them."""
        before = self.tokens
        for kind, payload in self._reader.feed(data):
            self._frame(kind, payload)
        return self.tokens - before

    def finish(self):
        """The decoded cache; raises if the stream stopped before its END frame or has bytes after it."""
        if not self.complete:
            total = self.header.n_tokens if self.header else "?"
            raise KVFormatError(f"truncated KV stream: ended after {self.tokens} of {total} tokens "
                                f"({self._reader.pending_bytes} bytes of an incomplete frame left)")
        if self._reader.pending_bytes:
            raise KVFormatError(f"{self._reader.pending_bytes} bytes of data after the END frame of a KV stream")
        return self.cache

    def _frame(self, kind: int, payload: bytes) -> None:
        if self.complete:
            raise KVFormatError("data after the END frame of a KV stream")
        if self.header is None:
            if kind != FRAME_HEADER:
                raise KVFormatError("KV stream does not start with a header frame")
            self._start(StreamHeader.unpack(payload, self._reader.version))
            return
        if kind == FRAME_HEADER:
            raise KVFormatError("second header frame in a KV stream")
        if kind == FRAME_END:
            self._end(payload)
        elif kind == FRAME_CHUNK:
            self._chunk(payload)
        else:
            self._text(payload)
        self.chunks += kind != FRAME_END

    def _start(self, header: StreamHeader) -> None:
        if self.config is not None:
            expected = config_geometry(self.config)
            if header.geometry != expected:
                raise KVFormatError(f"KV stream is for geometry {header.geometry} (layers, kv heads, head dim); "
                                    f"this model has {expected}")
            if header.fingerprint != bytes(8) and header.fingerprint != model_fingerprint(self.config):
                raise KVFormatError("KV stream was made by another model (fingerprint mismatch)")
        transform = None
        if header.transform_id != bytes(8):
            if self.transform is None or self.transform.transform_id != header.transform_id:
                have = self.transform.transform_id.hex() if self.transform is not None else "none"
                raise KVFormatError(f"KV stream needs KV transform {header.transform_id.hex()} (given: {have}); "
                                    "decode with the transform it was encoded with")
            transform = self.transform
        self._context = StreamContext(header.version, header.n_layers, header.batch, header.n_heads, transform,
                                      header.position_offset)
        self.header = header
        self._buffer = torch.empty((header.n_layers, 2, header.batch, header.n_heads, header.n_tokens, header.head_dim),
                                   dtype=DTYPES[header.dtype], device=self.device)

    def _chunk(self, payload: bytes) -> None:
        h = self.header
        rows = h.n_layers * 2 * h.batch * h.n_heads
        start, n = chunk_span(payload)
        self._check_span(start, n)
        target = self._buffer[..., start:start + n, :]
        info, tensor = decode_chunk(payload, rows, h.head_dim, DTYPES[h.dtype], self.device, self._context, target)
        if tensor is not None:
            target.copy_(tensor.reshape(h.n_layers, 2, h.batch, h.n_heads, n, h.head_dim))
        self.tokens += n

    def _text(self, payload: bytes) -> None:
        if len(payload) < _TEXT.size:
            raise KVFormatError("text frame too short")
        start, n = _TEXT.unpack_from(payload)
        if len(payload) != _TEXT.size + 4 * n:
            raise KVFormatError("text frame length does not match its token count")
        self._check_span(start, n)
        if self.model is None:
            raise KVFormatError(f"KV stream sends tokens {start}..{start + n} as text to recompute; "
                                "give StreamDecoder(model=...) to recompute them")
        ids = torch.from_numpy(np.frombuffer(payload, "<i4", n, _TEXT.size).astype(np.int64))
        ids = ids[None].expand(self.header.batch, -1).to(self.model.device)
        cache = self.cache
        with torch.no_grad():
            self.model(input_ids=ids, past_key_values=cache, use_cache=True)
        for layer, (keys, values) in enumerate(cache_layers(cache)):
            self._buffer[layer, 0, ..., start:start + n, :] = keys[..., start:start + n, :]
            self._buffer[layer, 1, ..., start:start + n, :] = values[..., start:start + n, :]
        self.tokens += n

    def _check_span(self, start: int, n: int) -> None:
        if start != self.tokens:
            raise KVFormatError(f"KV stream chunk starts at token {start}, expected {self.tokens}")
        if n == 0 or n > self.header.chunk_size or start + n > self.header.n_tokens:
            raise KVFormatError(f"KV stream chunk of {n} tokens at {start} does not fit the header")

    def _end(self, payload: bytes) -> None:
        if len(payload) != _END.size:
            raise KVFormatError("END frame has the wrong size")
        chunks, tokens = _END.unpack(payload)
        if chunks != self.chunks or tokens != self.tokens or tokens != self.header.n_tokens:
            raise KVFormatError(f"KV stream incomplete: END says {chunks} chunks / {tokens} tokens, "
                                f"received {self.chunks} / {self.tokens} (header: {self.header.n_tokens})")
        self.complete = True
