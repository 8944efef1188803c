"""KV-cache codec benchmark: `python -m eval.kv [--windows 10]` writes eval/results/kv.md.

SmolLM2-135M on WikiText-2 test: windows of 1,024 context tokens (the cache under test) and 128
continuation tokens fed on top of it. For every variant: continuation perplexity, next-token top-1
agreement with the original cache, and bits per cached value with everything included. Baselines
(fp16, per-token int8/int4, CacheGen as in LMCache, zstd-3) are measured in the same run; their
sizes are the ideal entropy of their symbols plus scales, as the issue's reference numbers are.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
import zlib

import numpy as np
import torch
import typer

from ctxzip.kv import LEVELS, KVCodec, KVFormatError
from ctxzip.kv.layout import cache_layers

CONTEXT, CONTINUATION = 1024, 128

app = typer.Typer(add_completion=False)


def windows(ids: torch.Tensor, count: int, offset: float = 0.0) -> list[torch.Tensor]:
    """`count` windows of CONTEXT + CONTINUATION + 1 tokens spread evenly over the text."""
    span = CONTEXT + CONTINUATION + 1
    stride = (ids.numel() - span) // count
    return [ids[int((i + offset) * stride): int((i + offset) * stride) + span] for i in range(count)]


def as_cache(layers):
    from transformers import DynamicCache

    cache = DynamicCache()
    for i, (keys, values) in enumerate(layers):
        cache.update(keys.float(), values.float(), i)
    return cache


@torch.no_grad()
def continuation_scores(model, cache, window) -> tuple[torch.Tensor, torch.Tensor]:
    """(negative log-likelihoods, argmax) of the continuation given `cache` for the context."""
    inputs = window[None, CONTEXT:CONTEXT + CONTINUATION]
    targets = window[CONTEXT + 1:CONTEXT + CONTINUATION + 1]
    logits = model(input_ids=inputs, past_key_values=copy.deepcopy(cache), use_cache=True).logits[0].float()
    nll = torch.nn.functional.cross_entropy(logits, targets, reduction="none")
    return nll, logits.argmax(-1)


# ---- baselines: each returns (reconstructed layers, bits for the whole cache) ---------------------

def entropy_bits(symbols: np.ndarray) -> float:
    """Ideal entropy-coded size in bits of `symbols` under their own empirical distribution."""
    counts = np.unique(symbols, return_counts=True)[1].astype(np.float64)
    return float(-(counts * np.log2(counts / counts.sum())).sum())


def per_token_int(layers, bits: int):
    """Asymmetric min-max quantization per token and head over head_dim; fp16 scale + zero per token."""
    levels = 2 ** bits - 1
    out, total = [], 0.0
    for pair in layers:
        rebuilt = []
        for x in pair:
            lo, hi = x.amin(-1, keepdim=True).half().float(), x.amax(-1, keepdim=True).half().float()
            scale = ((hi - lo) / levels).clamp_min(1e-8)
            q = torch.round((x - lo) / scale).clamp(0, levels)
            rebuilt.append(q * scale + lo)
            total += sum(entropy_bits(q[:, h].numpy()) for h in range(q.shape[1])) + 32 * lo.numel()
        out.append(tuple(rebuilt))
    return out, total


def cachegen_lmcache(layers):
    """LMCache's CacheGen: per-token absmax scale, 32 bins in the first half of layers, 16 later, no deltas;
    symbols entropy-coded with one distribution per (layer, key/value, channel)."""
    out, total = [], 0.0
    for layer, pair in enumerate(layers):
        bins = 32 if layer < len(layers) // 2 else 16
        rebuilt = []
        for x in pair:
            scale = x.abs().amax(-1, keepdim=True).half().float().clamp_min(1e-8)
            half = bins // 2 - 1
            q = torch.round(x / scale * half).clamp(-half - 1, half)
            rebuilt.append(q * scale / half)
            flat = q.permute(0, 1, 3, 2).reshape(-1, q.shape[2]).numpy()  # (batch, head, channel) x tokens
            total += sum(entropy_bits(row) for row in flat) + 16 * scale.numel()
        out.append(tuple(rebuilt))
    return out, total


def fp16_layers(layers):
    return [(k.half().float(), v.half().float()) for k, v in layers]


def zstd_bits(layers) -> float:
    import zstandard

    raw = b"".join(k.half().numpy().tobytes() + v.half().numpy().tobytes() for k, v in layers)
    return 8.0 * len(zstandard.ZstdCompressor(level=3).compress(raw))


# ---- the run -----------------------------------------------------------------------------------

def corruption_check(cache_layers_small, level: int) -> tuple[int, int, int, int, int]:
    """Every single-byte change (all 255 other values) and every truncation of a small stream."""
    codec = KVCodec(level=level, chunk_size=5)
    data = codec.encode(cache_layers_small)
    changes_detected = changes = 0
    for pos in range(len(data)):
        for value in range(256):
            if value == data[pos]:
                continue
            damaged = bytearray(data)
            damaged[pos] = value
            changes += 1
            try:
                codec.decode(bytes(damaged))
            except KVFormatError:
                changes_detected += 1
    cuts_detected = 0
    for cut in range(len(data)):
        try:
            codec.decode(data[:cut])
        except KVFormatError:
            cuts_detected += 1
    return len(data), changes, changes_detected, len(data), cuts_detected


@app.command()
def main(n_windows: int = typer.Option(10, "--windows"), offset: float = typer.Option(0.0),
         levels: str = typer.Option(",".join(str(level) for level in LEVELS)),
         baselines: bool = typer.Option(True), write: bool = typer.Option(True),
         corruption: bool = typer.Option(True),
         calibrate: int = typer.Option(0, help="windows (between the eval windows) to measure layer sensitivity on"),
         sensitivity: str = typer.Option("eval/results/kv_sensitivity.json", help="stored sensitivity weights ('' for none)"),
         gains: bool = typer.Option(True, help="also run every lossy level with per-channel gains (channels.py)"),
         gain_spread: float = typer.Option(8.0, help="channel gains are clamped to [1/spread, spread]"),
         chunk_size: int = typer.Option(256, help="tokens per chunk (frame)"),
         steps: str = typer.Option("", help="tuning only: override level steps, e.g. '4=0.75,5=1.2'")) -> None:
    from ctxzip.models import load_causal_lm
    from eval.datasets import load_wikitext2
    from eval.report import markdown_table, write_results

    torch.set_grad_enabled(False)
    for item in filter(None, steps.split(",")):  # tuning runs: the stream stores steps, so decoding is unaffected
        number, step = item.split("=")
        LEVELS[int(number)] = dataclasses.replace(LEVELS[int(number)], step=float(step))
    model, tokenizer = load_causal_lm("smollm2", device="cpu")
    ids = torch.tensor(tokenizer(load_wikitext2())["input_ids"])
    chosen_levels = [int(level) for level in levels.split(",") if level]
    layer_scales, calibration_note = None, "default layer scales (finer steps in the first 20% of layers)"
    if sensitivity and not calibrate:
        import json

        from ctxzip.kv.sensitivity import step_scales

        stored = json.loads(open(sensitivity, encoding="utf-8").read())
        layer_scales = step_scales(torch.tensor([stored["weights_keys"], stored["weights_values"]]).T)
        calibration_note = f"layer scales from the sensitivity stored in `{sensitivity}` ({stored['source']})"
    if calibrate:
        from ctxzip.kv.sensitivity import measure_sensitivity, step_scales

        weights = torch.stack([measure_sensitivity(model, w[:CONTEXT + 64], continuation=64)
                               for w in windows(ids, n_windows, offset + 0.5)[:calibrate]]).mean(0)
        layer_scales = step_scales(weights)
        calibration_note = (f"layer scales from sensitivity measured on {calibrate} calibration windows disjoint from the "
                            f"eval windows (KL of 64 continuation tokens when one layer's keys or values are quantized)")
    channel_gains, gains_note = None, ""
    if gains:
        from ctxzip.kv.channels import channel_gains as to_gains, measure_channel_weights

        # the same calibration text as the stored sensitivity, disjoint from the eval windows
        channel_gains = to_gains(measure_channel_weights(model, ids[250_000:250_000 + CONTEXT]), spread=gain_spread)
        gains_note = (" Rows marked `+ channel gains` also scale each channel's step by 1/sqrt(query energy) for keys "
                      "and 1/sqrt(o_proj column energy) for values, measured on WikiText-2 test tokens 250000..251024.")
    rows: dict[str, dict] = {}
    timing: dict[int, list[float]] = {level: [0.0, 0.0, 0.0] for level in chosen_levels}  # encode s, decode s, MB

    def record(name, layers_or_cache, bits, window, ref_top1):
        cache = layers_or_cache if hasattr(layers_or_cache, "layers") else as_cache(layers_or_cache)
        nll, top1 = continuation_scores(model, cache, window)
        row = rows.setdefault(name, {"nll": [], "agree": [], "bits": 0.0, "values": 0})
        row["nll"].append(nll)
        row["agree"].append((top1 == ref_top1).float())
        row["bits"] += bits

    started = time.time()
    for window in windows(ids, n_windows, offset):
        out = model(input_ids=window[None, :CONTEXT], use_cache=True)
        layers = [(k.clone(), v.clone()) for k, v in cache_layers(out.past_key_values)]
        values = sum(k.numel() + v.numel() for k, v in layers)
        original = as_cache(layers)
        ref_nll, ref_top1 = continuation_scores(model, original, window)
        record("original (fp32)", original, 32.0 * values, window, ref_top1)
        fp16 = [(k.half(), v.half()) for k, v in layers]
        if baselines:
            record("fp16", fp16_layers(layers), 16.0 * values, window, ref_top1)
            record("zstd-3 on fp16 (lossless)", fp16_layers(layers), zstd_bits(layers), window, ref_top1)
            for bits in (8, 4):
                rebuilt, size = per_token_int(layers, bits)
                record(f"per-token int{bits}", rebuilt, size, window, ref_top1)
            rebuilt, size = cachegen_lmcache(layers)
            record("CacheGen as in LMCache (32/16 bins)", rebuilt, size, window, ref_top1)
        fp16_mb = 2 * values / 1e6
        runs = [(level, layer_scales, None, f"ctxzip level {level} ({LEVELS[level].name})") for level in chosen_levels]
        if layer_scales is not None and 4 in chosen_levels:
            runs.append((4, None, None, "ctxzip level 4, default depth scales"))
        if channel_gains is not None:
            runs += [(level, layer_scales, channel_gains, f"ctxzip level {level} ({LEVELS[level].name}) + channel gains")
                     for level in chosen_levels if not LEVELS[level].lossless]
        for level, scales, level_gains, label in runs:
            codec = KVCodec(level=level, chunk_size=chunk_size, config=model.config, layer_scales=scales,
                            channel_gains=level_gains)
            source = fp16 if LEVELS[level].lossless else layers  # lossless is measured on the fp16 cache
            t0 = time.perf_counter()
            data = codec.encode(source)
            t1 = time.perf_counter()
            decoded = codec.decode(data)
            t2 = time.perf_counter()
            if scales is layer_scales and level_gains is None:
                timing[level][0] += t1 - t0
                timing[level][1] += t2 - t1
                timing[level][2] += fp16_mb
            record(label, decoded, 8.0 * len(data), window, ref_top1)
        for row in rows.values():
            row["values"] += values
    elapsed = time.time() - started

    ref_ppl = math.exp(torch.cat(rows["original (fp32)"]["nll"]).mean().item())
    table = []
    for name, row in rows.items():
        ppl = math.exp(torch.cat(row["nll"]).mean().item())
        bits = row["bits"] / row["values"]
        table.append([name, f"{bits:.2f}", f"{16 / bits:.2f}x", f"{ppl:.3f}", f"{100 * (ppl / ref_ppl - 1):+.2f}%",
                      f"{100 * torch.cat(row['agree']).mean().item():.1f}%"])
    speed = [[f"{level} ({LEVELS[level].name})", f"{mb / enc:.1f}", f"{mb / dec:.1f}"]
             for level, (enc, dec, mb) in timing.items()]
    lines = [
        "# KV-cache codec (issue 6)", "",
        f"SmolLM2-135M-Instruct (fp32, CPU) on WikiText-2 test: {n_windows} windows of {CONTEXT} context tokens "
        f"(the cache under test) + {CONTINUATION} continuation tokens, windows spread evenly over the text "
        f"(offset {offset}). Perplexity is over the {n_windows * CONTINUATION} continuation tokens; top-1 agreement is the share "
        "of continuation positions whose argmax equals the one with the original cache. Bits per value: ctxzip "
        "counts every byte of its stream (header, frames, CRCs, tables, scales); baselines count the ideal "
        "entropy of their symbols plus their fp16 scales (no tables, no framing), zstd its real output.",
        "", "Command: `flock /tmp/ctxzip-heavy.lock .venv/bin/python -m eval.kv "
        f"--windows {n_windows} --calibrate {calibrate}{'' if gains else ' --no-gains'} --gain-spread {gain_spread} "
        f"--chunk-size {chunk_size}{f' --steps {steps}' if steps else ''}`; run time {elapsed:.0f} s. "
        f"ctxzip levels use {calibration_note}.{gains_note}", "",
        markdown_table(["variant", "bits/value", "vs fp16", "perplexity", "vs original", "top-1 agreement"], table),
        "", "## Throughput (CPU, one thread of a shared 2-core machine, MB of fp16 cache per second)", "",
        markdown_table(["level", "encode MB/s", "decode MB/s"], speed),
    ]
    if corruption:
        small = [(k[:, :1, :8].contiguous(), v[:, :1, :8].contiguous()) for k, v in layers[:1]]
        size, changes, changed_caught, cuts, cuts_caught = corruption_check(small, level=2)
        lines += ["", "## Corruption", "",
                  f"Sample stream: level 2, first layer, first kv head, 8 tokens of a real cache, chunks of 5 tokens "
                  f"(one with sink tokens, one quantized), {size} bytes. "
                  f"Single-byte changes (every position, every other value): {changed_caught} of {changes} detected. "
                  f"Truncations (every length 0..{size - 1}): {cuts_caught} of {cuts} detected."]
    text = "\n".join(lines)
    print(text)
    if write:
        write_results("kv", text)


if __name__ == "__main__":
    app()
