"""Text kinds for the KV codec benchmark, each split into a calibration part and an evaluation part.

| kind | calibration part (transforms, sensitivities, gains) | evaluation part |
|---|---|---|
| prose: WikiText-2 test | tokens from 80% of the text to its end | tokens before 80% |
| code: Python stdlib modules | `load_stdlib_modules("train")` | `load_stdlib_modules("eval")` |
| dialogue: QMSum val meetings | none: a text kind the transform never saw | all 35 meetings |

Windows are CONTEXT + CONTINUATION + 1 tokens, spread evenly over a part.
"""

from __future__ import annotations

import functools
import json

import torch

from eval.datasets import data_dir, load_stdlib_modules, load_wikitext2

CONTEXT, CONTINUATION = 1024, 128
CALIBRATION_SHARE = 0.8  # WikiText tokens past this share are calibration data


def windows(ids: torch.Tensor, count: int, span: int = CONTEXT + CONTINUATION + 1) -> list[torch.Tensor]:
    """`count` windows of `span` tokens spread evenly over ids."""
    stride = (ids.numel() - span) // max(count, 1)
    return [ids[i * stride: i * stride + span] for i in range(count)]


def _qmsum_text() -> str:
    meetings = []
    with open(data_dir() / "qmsum" / "val.jsonl", encoding="utf-8") as f:
        for line in f:
            turns = json.loads(line)["meeting_transcripts"]
            meetings.append("\n".join(f"{turn['speaker']}: {turn['content']}" for turn in turns))
    return "\n\n".join(meetings)


@functools.cache
def token_parts(tokenizer) -> dict[str, tuple[torch.Tensor | None, torch.Tensor]]:
    """kind -> (calibration ids or None, evaluation ids), 1-D int64 tensors."""
    def encode(text: str) -> torch.Tensor:
        return torch.tensor(tokenizer(text)["input_ids"], dtype=torch.int64)

    wiki = encode(load_wikitext2())
    cut = int(CALIBRATION_SHARE * wiki.numel())
    code_train = encode("\n\n".join(module.text for module in load_stdlib_modules("train", min_lines=50)[:60]))
    code_eval = encode("\n\n".join(module.text for module in load_stdlib_modules("eval", min_lines=50)))
    return {"prose (WikiText-2)": (wiki[cut:], wiki[:cut]),
            "code (Python stdlib)": (code_train, code_eval),
            "dialogue (QMSum)": (None, encode(_qmsum_text()))}
