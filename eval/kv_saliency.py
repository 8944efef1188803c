"""Would token saliency pay for SmolLM2's caches? `python -m eval.kv_saliency` writes eval/results/kv_saliency.md.

Two cheap signals a codec could act on, measured on the evaluation windows of every text kind:
- outlier tokens: a token whose key or value norm (any layer, any head) is far above that head's median
  (tokens that act as extra attention sinks; coding them exactly would be cheap if they were few);
- attention concentration: the share of the continuation's attention mass (all layers and heads) that
  lands on the top 5% of context tokens, beyond the 4 sink and 16 recent tokens the codec keeps exact.
"""

from __future__ import annotations

import torch
import typer

from ctxzip.kv.layout import cache_layers
from eval.kv_data import CONTEXT, CONTINUATION, token_parts, windows

app = typer.Typer(add_completion=False)
SINK, RECENT = 4, 16


@app.command()
def main(n_windows: int = typer.Option(4, "--windows"), write: bool = typer.Option(True)) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ctxzip.models import resolve_model_path
    from eval.report import markdown_table, write_results

    torch.set_grad_enabled(False)
    path = resolve_model_path("smollm2")
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, attn_implementation="eager").eval()
    rows = []
    for kind, (_, ids) in token_parts(tokenizer).items():
        key_ratio, value_ratio, outliers, concentration = 0.0, 0.0, 0, []
        for window in windows(ids, n_windows):
            out = model(input_ids=window[None, :CONTEXT], use_cache=True)
            for index, pair in enumerate(zip(*[(k[0], v[0]) for k, v in cache_layers(out.past_key_values)])):
                norms = torch.stack(pair).norm(dim=-1)  # [L, H, T]
                ratio = (norms / norms.median(dim=-1, keepdim=True).values)[..., SINK:].amax(dim=(0, 1))
                if index == 0:
                    key_ratio = max(key_ratio, float(ratio.max()))
                else:
                    value_ratio = max(value_ratio, float(ratio.max()))
                outliers += int((ratio > 4).sum())
            attentions = model(input_ids=window[None, CONTEXT:CONTEXT + CONTINUATION], past_key_values=out.past_key_values,
                               output_attentions=True).attentions
            mass = torch.stack([a[0, :, :, SINK:CONTEXT - RECENT].sum(dim=(0, 1)) for a in attentions]).sum(0)
            top = torch.topk(mass, max(1, int(0.05 * mass.numel()))).values.sum()
            concentration.append(float(top / mass.sum()))
        rows.append([kind, f"{key_ratio:.1f}", f"{value_ratio:.1f}", str(outliers),
                     f"{100 * sum(concentration) / len(concentration):.1f}%"])
    text = "\n".join([
        "# Token saliency in SmolLM2 KV caches", "",
        f"{n_windows} evaluation windows per text kind ({CONTEXT} context tokens, {CONTINUATION} continuation tokens; "
        "`eval/kv_data.py`). Norm ratios: a token's key (value) norm over its head's median, the largest over layers, "
        f"heads and tokens past the {SINK} sinks. Outlier tokens: tokens with a ratio above 4 in any layer and head, "
        f"summed over windows. Attention share: of the continuation's attention to context tokens between the sinks and "
        f"the last {RECENT}, the share the top 5% of those tokens receive (all layers and heads, eager attention).", "",
        "Command: `flock /tmp/ctxzip-heavy.lock .venv/bin/python -m eval.kv_saliency`.", "",
        markdown_table(["text kind", "max key norm ratio", "max value norm ratio", "outlier tokens", "attention share of top 5%"],
                       rows),
    ])
    print(text)
    if write:
        write_results("kv_saliency", text)


if __name__ == "__main__":
    app()
