"""Triton kernels equal the torch reference, run on the CPU under TRITON_INTERPRET=1.

The interpreter must be switched on before triton is imported, so the comparison runs in a fresh
interpreter process.
"""

import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("triton")

SCRIPT = textwrap.dedent("""
    import torch
    from ctxzip.kv import kernels, quant

    torch.manual_seed(0)
    for rows, tokens, dim, group in [(3, 5, 16, 2), (6, 70, 64, 8), (2, 33, 24, 7), (1, 1, 8, 4)]:
        x = torch.randn(rows, tokens, dim) * torch.rand(rows, 1, dim) * 10
        x[0, 0, 0] = 0.5  # exact halves: the rounding rule must agree
        mean = x.mean(1).half()
        step = (x.std(dim=(1, 2)) * torch.rand(rows) * 0.3 + 1e-3).float()
        q_ref, q_tri = quant.quantize(x, mean, step), kernels.triton_quantize(x, mean, step)
        assert torch.equal(q_ref, q_tri), ("quantize", rows, tokens, dim)
        assert torch.equal(quant.quantize(x.half(), mean, step), kernels.triton_quantize(x.half(), mean, step))
        assert torch.equal(quant.dequantize(q_ref, mean, step), kernels.triton_dequantize(q_ref, mean, step))
        d_ref, d_tri = quant.anchor_delta(q_ref, group), kernels.triton_anchor_delta(q_ref, group)
        assert torch.equal(d_ref, d_tri), ("delta", rows, tokens, dim, group)
        assert torch.equal(quant.undo_anchor_delta(d_ref, group), kernels.triton_undo_anchor_delta(d_ref, group))
        assert torch.equal(quant.undo_anchor_delta(d_ref, group), q_ref)
    print("kernels equal")
""")


def run_under_interpreter(script: str) -> str:
    """Run `script` in a fresh interpreter with Triton's CPU interpreter on; its stdout."""
    env = dict(os.environ, TRITON_INTERPRET="1")
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_triton_kernels_equal_torch_reference_under_interpreter():
    assert "kernels equal" in run_under_interpreter(SCRIPT)


def test_cpu_tensors_use_the_torch_reference():
    import torch

    from ctxzip.kv import kernels, quant

    x = torch.randn(2, 9, 8)
    mean, step = x.mean(1).half(), torch.tensor([0.1, 0.2])
    assert torch.equal(kernels.quantize(x, mean, step), quant.quantize(x, mean, step))
    q = quant.quantize(x, mean, step)
    assert torch.equal(kernels.undo_anchor_delta(kernels.anchor_delta(q, 4), 4), q)


RANS_SCRIPT = textwrap.dedent("""
    import numpy as np
    from ctxzip.kv import KVFormatError, laplace, rans
    from ctxzip.kv.rans_triton import triton_decode

    rng = np.random.default_rng(0)
    for lanes, n_segments, length in [(1, 3, 5), (8, 9, 37), (32, 4, 300)]:
        index = rng.integers(5, 60, n_segments)
        values = np.concatenate([np.round(rng.laplace(0, laplace.scale_of_index(i), length)) for i in index]).astype(np.int64)
        values[1] = 77777
        data = rans.encode(values, index, length, laplace.tables(), lanes=lanes)
        reference, end = rans.decode(memoryview(data), 0, values.size, index, length, laplace.tables())
        out, end2 = triton_decode(memoryview(data), 0, values.size, index, length, laplace.tables(), "cpu")
        assert np.array_equal(out.numpy(), reference) and np.array_equal(reference, values) and end == end2
        damaged = bytearray(data)
        damaged[-1] ^= 4
        try:
            triton_decode(memoryview(bytes(damaged)), 0, values.size, index, length, laplace.tables(), "cpu")
            raise SystemExit("damage not detected")
        except KVFormatError:
            pass
    print("rans equal")
""")


def test_triton_rans_decoder_equals_the_numba_decoder_under_interpreter():
    assert "rans equal" in run_under_interpreter(RANS_SCRIPT)
