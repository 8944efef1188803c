"""`ctxzip kv encode|decode|bench`: KV caches of a local causal LM to and from files."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

from ctxzip.errors import CtxzipError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Encode, decode and benchmark KV caches.")


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _prefill(model_name: str, text_path: str, max_tokens: int):
    import torch

    from ctxzip.models import load_causal_lm

    path = Path(text_path)
    if not path.is_file():
        _fail(f"no such file: {text_path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        _fail(f"{text_path} is not UTF-8 text")
    model, tokenizer = load_causal_lm(model_name, device="cpu")
    ids = tokenizer(text, return_tensors="pt").input_ids[:, :max_tokens]
    if ids.numel() == 0:
        _fail(f"{text_path} has no tokens")
    with torch.no_grad():
        cache = model(ids, use_cache=True).past_key_values
    return model, ids, cache


@app.command()
def encode(
    text: str = typer.Argument(..., help="Text file whose KV cache (after prefill) is encoded."),
    output: str = typer.Option(..., "--output", "-o", help="Where to write the .czkv stream."),
    model: str = typer.Option("smollm2", help="Causal LM: embedded alias, local path or hub id."),
    level: str = typer.Option("good", help="Level number or name (0 = lossless)."),
    chunk_size: int = typer.Option(256, help="Tokens per chunk frame."),
    max_tokens: int = typer.Option(4096, help="Use at most this many tokens of the text."),
    budget_bytes: Optional[int] = typer.Option(None, help="Pick the best level that fits this many bytes."),
    ratio: Optional[float] = typer.Option(None, help="Pick the best level within this share of the fp16 size."),
    channel_gains: bool = typer.Option(True, help="Finer steps for the channels attention reads most (one extra forward)."),
    transform: Optional[str] = typer.Option(None, help="KV transform for levels 6-10: a shipped name (smollm2) or .npz."),
) -> None:
    """Prefill a model on a text file and write its KV cache as a compressed stream."""
    from ctxzip.kv import KVBudget, KVCodec, fp16_bytes

    if not Path(output).parent.is_dir():  # before the model runs, not after
        _fail(f"no such folder for --output: {Path(output).parent}")
    try:
        lm, ids, cache = _prefill(model, text, max_tokens)
        if transform is not None:
            codec = KVCodec(level=level, chunk_size=chunk_size, config=lm.config, transform=transform)
        elif channel_gains:
            codec = KVCodec.calibrated(lm, ids, level=level, chunk_size=chunk_size)
        else:
            codec = KVCodec(level=level, chunk_size=chunk_size, config=lm.config)
        budget = None
        if budget_bytes is not None or ratio is not None:
            budget = KVBudget(bytes=budget_bytes, ratio=ratio)
        started = time.perf_counter()
        data = codec.encode(cache, budget=budget)
        seconds = time.perf_counter() - started
    except CtxzipError as exc:
        _fail(str(exc))
    try:
        Path(output).write_bytes(data)
    except OSError as exc:
        _fail(f"cannot write {output}: {exc.strerror or exc}")
    reference = fp16_bytes(cache)
    typer.echo(f"{ids.shape[1]} tokens -> {len(data)} bytes ({8 * len(data) / (reference / 2):.2f} bits/value, "
               f"{reference / len(data):.2f}x smaller than fp16) in {seconds:.2f}s")


@app.command()
def decode(
    stream: str = typer.Argument(..., help="A .czkv stream written by `ctxzip kv encode`."),
    model: Optional[str] = typer.Option(None, help="Check the stream against this model's geometry."),
    device: str = typer.Option("cpu"),
    transform: Optional[str] = typer.Option(None, help="The KV transform a transform-coded stream names."),
) -> None:
    """Decode a stream, check it end to end, and describe the cache inside."""
    from ctxzip.kv import KVCodec
    from ctxzip.kv.format import FrameReader, StreamHeader

    path = Path(stream)
    if not path.is_file():
        _fail(f"no such file: {stream}")
    data = path.read_bytes()
    try:
        config = None
        if model is not None:
            from ctxzip.models import load_causal_lm

            config = load_causal_lm(model, device="cpu")[0].config
        started = time.perf_counter()
        cache = KVCodec(config=config, transform=transform).decode(data, device=device)
        seconds = time.perf_counter() - started
        reader = FrameReader()
        header = StreamHeader.unpack(reader.feed(data[:80])[0][1], reader.version)
    except CtxzipError as exc:
        _fail(str(exc))
    typer.echo(f"ok: {cache.get_seq_length()} tokens, {header.n_layers} layers x {header.n_heads} kv heads x "
               f"{header.head_dim} dims, {header.dtype}, level {header.level}, chunks of {header.chunk_size}; "
               f"{len(data)} bytes decoded in {seconds:.3f}s")


@app.command()
def bench(
    text: str = typer.Argument(..., help="Text file to prefill."),
    model: str = typer.Option("smollm2"),
    max_tokens: int = typer.Option(1024),
    levels: str = typer.Option("0,1,2,3,4,5", help="Comma-separated levels (6-10 need --transform)."),
    transform: Optional[str] = typer.Option(None, help="KV transform for levels 6-10."),
) -> None:
    """Size and CPU speed of every level on one cache (quality: `python -m eval.kv`)."""
    import torch

    from ctxzip.kv import LEVELS, KVCodec, fp16_bytes

    try:
        lm, ids, cache = _prefill(model, text, max_tokens)
        reference = fp16_bytes(cache)
        half = [(layer.keys.half(), layer.values.half()) for layer in cache.layers]
        typer.echo(f"{ids.shape[1]} tokens, {reference / 1e6:.1f} MB as fp16")
        typer.echo("level  bits/value  encode MB/s  decode MB/s  max abs error")
        for level in [int(x) for x in levels.split(",")]:
            codec = KVCodec(level=level, config=lm.config, transform=transform)
            source = half if LEVELS[level].lossless else cache
            started = time.perf_counter()
            data = codec.encode(source)
            middle = time.perf_counter()
            decoded = codec.decode(data)
            done = time.perf_counter()
            error = max((a.keys.float() - b.keys.float()).abs().max().item()
                        for a, b in zip(decoded.layers, cache.layers)) if not LEVELS[level].lossless else 0.0
            typer.echo(f"{level:>5}  {8 * len(data) / (reference / 2):>10.2f}  {reference / 1e6 / (middle - started):>11.1f}"
                       f"  {reference / 1e6 / (done - middle):>11.1f}  {error:>13.4f}")
    except CtxzipError as exc:
        _fail(str(exc))
    del torch
