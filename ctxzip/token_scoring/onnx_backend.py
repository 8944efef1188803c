"""ONNX Runtime int8 forward for token classifiers on the CPU.

On a 2-core CPU the encoder forward is ~95% of the time, and ONNX Runtime's int8 MatMul with its
fused attention/GELU/LayerNorm kernels is several times faster than PyTorch fp32 (torch's own
dynamic quantization only speeds up the Linear layers). The checkpoint is exported and quantized
once into CTXZIP_HOME/onnx/<key>/ (export needs the `onnx` package; running needs only onnxruntime).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np


def onnx_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None


def _cache_folder(model_path: str) -> Path:
    from ctxzip.models import ctxzip_home

    folder = Path(model_path)
    stamp = ""
    weights = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")) if folder.exists() else []
    for weight in weights:
        stat = weight.stat()
        stamp += f"{weight.name}:{stat.st_size}:{stat.st_mtime_ns};"
    key = hashlib.sha1(f"{folder.resolve() if folder.exists() else model_path}|{stamp}".encode()).hexdigest()[:16]
    return ctxzip_home() / "onnx" / key


# v2: transformer fusions (one Attention op per layer, fused LayerNorm and GELU) before int8.
EXPORT_NAME = "model.int8.fused.onnx"


def exported_int8(model_path: str) -> Path | None:
    """The cached int8 ONNX file of this checkpoint, if it was exported before."""
    target = _cache_folder(model_path) / EXPORT_NAME
    return target if target.exists() else None


def _fuse(fp32: Path, config) -> Path:
    """ONNX Runtime's transformer optimizer on the exported graph: attention, LayerNorm and GELU
    become fused kernels, which int8 then quantizes as whole attention blocks. BERT and RoBERTa
    graphs only; anything it cannot fuse is left as exported."""
    from onnxruntime.transformers import optimizer

    if getattr(config, "model_type", "") not in ("bert", "roberta", "xlm-roberta"):
        return fp32
    try:
        fused = optimizer.optimize_model(str(fp32), model_type="bert", num_heads=int(config.num_attention_heads),
                                         hidden_size=int(config.hidden_size), opt_level=1)
    except Exception:  # an architecture variant the optimizer does not know: keep the plain graph
        return fp32
    target = fp32.with_name(fp32.stem + ".fused.onnx")
    fused.save_model_to_file(str(target))
    return target


def export_int8(model, model_path: str) -> Path:
    """Export `model` (a torch token classifier) to ONNX and quantize its weights to int8, once."""
    from filelock import FileLock

    folder = _cache_folder(model_path)
    target = folder / EXPORT_NAME
    if target.exists():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder / ".lock")):
        if target.exists():
            return target
        import torch
        from onnxruntime.quantization import QuantType, quantize_dynamic

        class Logits(torch.nn.Module):
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def forward(self, input_ids, attention_mask):
                return self.inner(input_ids=input_ids, attention_mask=attention_mask).logits

        example = torch.ones((2, 16), dtype=torch.long)
        fp32 = folder / f"model.{os.getpid()}.onnx"
        axes = {0: "batch", 1: "sequence"}
        # Plain (eager) attention exports as the graph pattern the fusion below recognises; SDPA does not.
        attention = getattr(model.config, "_attn_implementation", None)
        if attention is not None:
            model.config._attn_implementation = "eager"
        with torch.no_grad():
            torch.onnx.export(
                Logits(model.float().eval()), (example, example), str(fp32), dynamo=False, opset_version=17,
                input_names=["input_ids", "attention_mask"], output_names=["logits"],
                dynamic_axes={"input_ids": axes, "attention_mask": axes, "logits": axes},
            )
        if attention is not None:
            model.config._attn_implementation = attention
        fused = _fuse(fp32, model.config)
        tmp = folder / f"model.int8.{os.getpid()}.onnx"
        import onnx

        # Fused ops come from onnxruntime's own domain, which shape inference does not type.
        quantize_dynamic(str(fused), str(tmp), weight_type=QuantType.QInt8,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
        os.replace(tmp, target)
        fp32.unlink(missing_ok=True)
        fused.unlink(missing_ok=True)
    return target


class OnnxTokenClassifier:
    """Callable like the torch model's forward, returning numpy logits."""

    def __init__(self, onnx_path: Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])

    def logits(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
