"""Token surprisal (-log p) from a causal LM: one forward per window, the KV cache carried across windows.

When the cache would outgrow `max_context`, it restarts from the prefix plus the last `overlap`
tokens, so memory and attention cost stay bounded on very long inputs.
"""

from __future__ import annotations

import numpy as np

from ctxzip.progress import report


def _surprisal(logits, targets):
    """-log softmax(logits)[target] per row, without materialising the full log-softmax."""
    return (logits.logsumexp(-1) - logits.gather(-1, targets[:, None])[:, 0]).float()


def token_surprisal(
    model,
    ids: np.ndarray,
    prefix: np.ndarray,
    *,
    window: int = 512,
    max_context: int = 4096,
    overlap: int = 256,
    suffix: np.ndarray | None = None,
) -> tuple[np.ndarray, float | None]:
    """Surprisal in nats of each of `ids` given `prefix` (at least a start token) and what precedes it.

    With `suffix`, also the mean surprisal of the suffix tokens after the whole text (e.g. a
    question after a document: LongLLMLingua's document relevance).
    """
    import torch
    from transformers import DynamicCache

    if len(prefix) < 1:
        raise ValueError("prefix needs at least a start token")
    device = next(model.parameters()).device
    prefix = np.asarray(prefix, dtype=np.int64)
    ids = np.asarray(ids, dtype=np.int64)
    result = np.zeros(len(ids), dtype=np.float32)
    cache, cache_len, carried = DynamicCache(), 0, None
    context = prefix
    position = 0

    def forward(feed: np.ndarray):
        tensor = torch.from_numpy(feed)[None].to(device)
        return model(input_ids=tensor, past_key_values=cache, use_cache=True).logits[0]

    with torch.inference_mode():
        while position < len(ids):
            report("language model", position, len(ids))
            take = min(window, len(ids) - position)
            if cache_len + len(context) + take > max_context and cache_len:
                cache, cache_len, carried = DynamicCache(), 0, None
                context = np.concatenate([prefix, ids[max(0, position - overlap) : position]])
            feed = np.concatenate([context, ids[position : position + take]])
            logits = forward(feed)
            if len(context):
                predictors = logits[len(context) - 1 : len(feed) - 1]
            else:
                predictors = torch.cat([carried, logits[:-1]])
            targets = torch.from_numpy(ids[position : position + take]).to(logits.device)
            result[position : position + take] = _surprisal(predictors, targets).cpu().numpy()
            carried = logits[-1:]
            cache_len += len(feed)
            context = np.zeros(0, dtype=np.int64)
            position += take
        suffix_score = None
        if suffix is not None and len(suffix):
            suffix = np.asarray(suffix, dtype=np.int64)
            feed = suffix if carried is not None else np.concatenate([prefix, suffix])
            logits = forward(feed)
            if carried is not None:
                predictors = torch.cat([carried, logits[:-1]])
            else:
                predictors = logits[len(prefix) - 1 : -1]
            targets = torch.from_numpy(suffix).to(logits.device)
            suffix_score = float(_surprisal(predictors, targets).mean())
    return result, suffix_score
