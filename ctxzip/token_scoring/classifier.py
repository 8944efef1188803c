"""Token-classification inference: load a checkpoint once, run it over windows, return keep probabilities.

The whole input is tokenised once with character offsets (the fast tokenizer's Rust encoder), cut into
windows at sentence ends, and the windows are run in length-sorted batches under `inference_mode`.
On the CPU the Linear layers can be int8 (torch dynamic quantization): the forward is ~95% of the time.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ctxzip.batching import batch_by_length
from ctxzip.errors import InvalidInputError, ModelNotAvailableError
from ctxzip.models import quietly
from ctxzip.progress import report

TOKEN_CLASSIFIER_SUFFIX = "ForTokenClassification"


@dataclass
class Encoded:
    """One text as token ids with character offsets [starts, ends) into that text."""

    ids: np.ndarray
    starts: np.ndarray
    ends: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class TokenClassifier:
    """A loaded checkpoint: model, fast tokenizer and what inference needs to know about them."""

    name: str
    model: object
    tokenizer: object
    device: str
    max_length: int
    quantized: bool
    backend: str = "torch"  # "torch" or "onnx" (int8 ONNX Runtime session in `onnx`)
    onnx: object | None = None
    question_aware: bool = False  # trained on `[CLS] query [SEP] context [SEP]` (ctxzip/lingua-minilm-qa-v1)

    def encode(self, text: str) -> Encoded:
        """Token ids and offsets of `text` without special tokens, in one call to the Rust encoder."""
        encoding = self.tokenizer.backend_tokenizer.encode(text, add_special_tokens=False)
        ids = np.asarray(encoding.ids, dtype=np.int64)
        offsets = np.asarray(encoding.offsets, dtype=np.int64).reshape(-1, 2)
        return Encoded(ids, offsets[:, 0], offsets[:, 1])

    def keep_probabilities(
        self,
        sequences: list[np.ndarray],
        max_batch_tokens: int = 8192,
        max_batch_size: int = 64,
        pad_to: int | None = None,
    ) -> list[np.ndarray]:
        """P(label 1 = keep) for every position of every sequence (special tokens included).

        `sequences` already carry their special tokens. Batches group similar lengths; `pad_to`
        pads every sequence to a fixed width (only to mimic llmlingua's batches).
        """
        lengths = np.array([len(s) for s in sequences], dtype=np.int64)
        if pad_to is not None:
            lengths = np.full(len(sequences), pad_to, dtype=np.int64)
        results: list[np.ndarray | None] = [None] * len(sequences)
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        if pad_to is not None:  # llmlingua keeps its order and fixed-size batches
            batches = [np.arange(i, min(i + max_batch_size, len(sequences))) for i in range(0, len(sequences), max_batch_size)]
        else:
            batches = batch_by_length(lengths, max_batch_tokens, max_batch_size)
        for done, batch in enumerate(batches):
            report("token classifier", done, len(batches))
            width = int(lengths[batch].max())
            ids = np.full((len(batch), width), pad_id, dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            for row, index in enumerate(batch.tolist()):
                ids[row, : len(sequences[index])] = sequences[index]
                mask[row, : len(sequences[index])] = 1
            probs = self.forward_probabilities(ids, mask)
            for row, index in enumerate(batch.tolist()):
                results[index] = probs[row, : len(sequences[index])]
        report("token classifier", len(batches), len(batches))
        return results  # type: ignore[return-value]

    def forward_probabilities(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """P(keep) per position (batch, width) from torch or the ONNX Runtime session."""
        if self.onnx is not None:
            return keep_probability(self.onnx.logits(ids, mask))
        import torch

        with torch.inference_mode():
            logits = self.model(
                input_ids=torch.from_numpy(ids).to(self.device), attention_mask=torch.from_numpy(mask).to(self.device)
            ).logits.float()
            # torch's softmax, as llmlingua computes it, so compatible mode matches to the last bit
            probs = torch.sigmoid(logits[..., 0]) if logits.shape[-1] == 1 else torch.softmax(logits, dim=-1)[..., 1]
            return probs.cpu().numpy()


def keep_probability(logits: np.ndarray) -> np.ndarray:
    """P(label 1) from 2-label logits (softmax), or sigmoid of a single logit."""
    if logits.shape[-1] == 1:
        return 1.0 / (1.0 + np.exp(-logits[..., 0]))
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp[..., 1] / exp.sum(axis=-1)


def _architectures(path: str) -> list[str]:
    config = Path(path) / "config.json"
    if config.exists():
        return json.loads(config.read_text()).get("architectures") or []
    return []


@functools.lru_cache(maxsize=4)
@quietly
def load_token_classifier(
    name: str, device: str = "auto", quantize: str | None = None, allow_random_head: bool = False, backend: str = "auto",
    full_tokenizer: bool = False,
) -> TokenClassifier:
    """Load a token-classification checkpoint (local path, embedded alias or hub id) once.

    A checkpoint without a token-classification head (e.g. the bare MiniLM encoder) is refused
    unless `allow_random_head`: its fresh head is random and its selection meaningless.
    An int8 CPU model exported to ONNX before loads without torch or transformers (a third of the
    time) unless `full_tokenizer` asks for the transformers tokenizer (llmlingua-compatible mode).
    """
    from ctxzip.models import resolve_device, resolve_model_path

    device = resolve_device(device)
    path = resolve_model_path(name)
    architectures = _architectures(path)
    if architectures and not any(a.endswith(TOKEN_CLASSIFIER_SUFFIX) for a in architectures) and not allow_random_head:
        raise ModelNotAvailableError(
            f"{name!r} is a {architectures[0]}, not a token classifier; pass a *ForTokenClassification checkpoint, "
            "or allow_random_head=True to put an untrained keep/drop head on it (for speed tests only)"
        )
    if quantize == "int8" and device == "cpu" and backend in ("auto", "onnx") and not full_tokenizer:
        light = _exported_onnx_classifier(str(name), path)
        if light is not None:
            return light
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from ctxzip.models import resolve_dtype

    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForTokenClassification.from_pretrained(path, dtype=resolve_dtype(device))
    except OSError as exc:
        raise ModelNotAvailableError(f"could not load token classifier {name!r} offline: {exc}") from exc
    if not getattr(tokenizer, "is_fast", False):
        raise ModelNotAvailableError(f"{name!r} has no fast tokenizer; offsets are needed to map tokens to words")
    # Some tokenizer.json files (MiniLM's) carry truncation to 128 tokens; we window ourselves.
    tokenizer.backend_tokenizer.no_truncation()
    tokenizer.backend_tokenizer.no_padding()
    model = model.to(device).eval()
    quantized, onnx = False, None
    if quantize not in (None, "none", "int8"):
        raise InvalidInputError(f"quantize must be None, 'none' or 'int8', got {quantize!r}")
    if backend not in ("auto", "torch", "onnx"):
        raise InvalidInputError(f"backend must be 'auto', 'torch' or 'onnx', got {backend!r}")
    if quantize == "int8":
        if device != "cpu":
            raise InvalidInputError("int8 quantization runs on the CPU only; CUDA uses half precision")
        onnx = _onnx_int8(model, path) if backend in ("auto", "onnx") else None
        if onnx is None and backend == "onnx":
            raise ModelNotAvailableError("backend='onnx' needs onnxruntime (and onnx once, to export the model)")
        if onnx is None:
            import torch

            model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        quantized = True
    window = window_limit(model.config.to_dict(), getattr(tokenizer, "model_max_length", None))
    return TokenClassifier(
        str(name), model, tokenizer, device, window, quantized,
        "onnx" if onnx is not None else "torch", onnx, bool(getattr(model.config, "ctxzip_question_aware", False)),
    )


def window_limit(config: dict, tokenizer_max_length: int | None) -> int:
    """Longest window (special tokens included): the tokenizer's and position table's limits, and the
    window a ctxzip head was trained on."""
    max_length = int(min(tokenizer_max_length or 512, 512))
    position_limit = config.get("max_position_embeddings", 512)
    if config.get("model_type") in ("roberta", "xlm-roberta", "camembert"):
        position_limit -= 2  # positions start after the padding index
    return min(max_length, position_limit, config.get("ctxzip_window") or position_limit)


def _exported_onnx_classifier(name: str, path: str) -> TokenClassifier | None:
    """The int8 ONNX model exported on an earlier load, with a tokenizers-only tokenizer; None if absent."""
    from ctxzip.token_scoring.light_tokenizer import LightTokenizer
    from ctxzip.token_scoring.onnx_backend import OnnxTokenClassifier, exported_int8, onnx_available

    config_file = Path(path) / "config.json"
    if not (onnx_available() and config_file.exists() and LightTokenizer.available(path)):
        return None
    exported = exported_int8(path)
    if exported is None:
        return None
    config = json.loads(config_file.read_text(encoding="utf-8"))
    tokenizer = LightTokenizer(path)
    return TokenClassifier(name, None, tokenizer, "cpu", window_limit(config, tokenizer.model_max_length), True,
                           "onnx", OnnxTokenClassifier(exported), bool(config.get("ctxzip_question_aware", False)))


def _onnx_int8(model, path: str):
    """An int8 ONNX Runtime session for `model`, or None where onnxruntime/onnx are missing."""
    from ctxzip.token_scoring.onnx_backend import OnnxTokenClassifier, export_int8, onnx_available

    import importlib.util

    from ctxzip.token_scoring.onnx_backend import exported_int8

    if not onnx_available():
        return None
    if exported_int8(path) is None and importlib.util.find_spec("onnx") is None:
        return None  # exporting needs the `onnx` package; the torch int8 path is used instead
    return OnnxTokenClassifier(export_int8(model, path))


def with_special_tokens(tokenizer, ids: np.ndarray, query_ids: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """([CLS] ids [SEP], or [CLS] query [SEP] ids [SEP] for a question-aware model; the number of
    tokens in front of `ids`) as in training."""
    cls_id = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    sep_id = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    head = [cls_id] if cls_id is not None else []
    tail = [sep_id] if sep_id is not None else []
    if query_ids is not None and len(query_ids):
        head = head + [int(i) for i in query_ids] + tail
    return np.concatenate([np.asarray(head, dtype=np.int64), ids, np.asarray(tail, dtype=np.int64)]), len(head)
