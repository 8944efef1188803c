"""PerplexityCompressor and the windowed surprisal with a carried KV cache (tiny random Llama; one real SmolLM2 test)."""

import json

import numpy as np
import pytest
from wiki import wiki_text

from ctxzip.compressors.base import make_request
from ctxzip import Budget, Document
from ctxzip.budget import get_token_counter
from ctxzip.compressors.perplexity import PerplexityCompressor
from ctxzip.segment import phrase_spans
from ctxzip.errors import BudgetTooSmallError, InvalidInputError
from ctxzip.select import DOCUMENT_SEPARATOR
from ctxzip.token_scoring.causal import token_surprisal



def full_surprisal(model, ids, prefix):
    import torch

    sequence = torch.tensor(np.concatenate([prefix, ids]))[None]
    with torch.inference_mode():
        logits = model(input_ids=sequence).logits[0]
    logp = torch.log_softmax(logits.float(), -1)
    targets = sequence[0, len(prefix):]
    return -logp[len(prefix) - 1 : -1].gather(-1, targets[:, None])[:, 0].numpy()


def test_windows_with_a_carried_cache_equal_one_full_pass(tiny_lm):
    from ctxzip.models import load_causal_lm

    model, tokenizer = load_causal_lm(tiny_lm, "cpu")
    ids = np.array(tokenizer(wiki_text(3_000), add_special_tokens=False)["input_ids"][:300])
    prefix = np.array([1, 42, 43])
    expected = full_surprisal(model, ids, prefix)
    windowed, _ = token_surprisal(model, ids, prefix, window=37, max_context=2048)
    np.testing.assert_allclose(windowed, expected, rtol=1e-4, atol=1e-4)
    # A bounded cache restarts from prefix + overlap: same first windows, finite everywhere.
    bounded, _ = token_surprisal(model, ids, prefix, window=37, max_context=120, overlap=20)
    np.testing.assert_allclose(bounded[:74], expected[:74], rtol=1e-4, atol=1e-4)
    assert np.isfinite(bounded).all() and not np.allclose(bounded, expected)


def test_suffix_score_is_the_mean_surprisal_of_the_suffix(tiny_lm):
    from ctxzip.models import load_causal_lm

    model, _ = load_causal_lm(tiny_lm, "cpu")
    ids, suffix, prefix = np.arange(100, 160), np.arange(500, 510), np.array([1])
    _, suffix_score = token_surprisal(model, ids, prefix, window=16, suffix=suffix)
    expected = full_surprisal(model, np.concatenate([ids, suffix]), prefix)[-len(suffix):].mean()
    assert suffix_score == pytest.approx(float(expected), rel=1e-4)


@pytest.mark.parametrize("unit", ["word", "phrase", "sentence"])
@pytest.mark.parametrize("query", [None, "Who starred in the play?"])
def test_budget_is_met_and_output_is_sliced(tiny_lm, unit, query):
    docs = [Document(wiki_text(1_200, offset=i * 2_000), f"d{i}") for i in range(3)]
    budget = Budget(tokens=250)
    result = PerplexityCompressor(model=tiny_lm, unit=unit).compress(docs, query=query, budget=budget)
    assert result.compressed_tokens <= 250
    if unit == "word":
        assert result.compressed_tokens >= 0.97 * 250
    by_id = {d.id: d.text for d in docs}
    pieces = {}
    for span in result.kept:
        pieces.setdefault(span.doc_id, []).append(by_id[span.doc_id][span.start : span.end])
    assert result.text == DOCUMENT_SEPARATOR.join("".join(pieces[d.id]).lstrip() for d in docs if d.id in pieces)


def test_scores_follow_surprisal(tiny_lm):
    text = wiki_text(2_000)
    compressor = PerplexityCompressor(model=tiny_lm)
    units = compressor.score_units(make_request([Document(text)], None))
    from ctxzip.models import load_causal_lm

    model, tokenizer = load_causal_lm(tiny_lm, "auto")
    encoding = tokenizer.backend_tokenizer.encode(text, add_special_tokens=False)
    surprisal = full_surprisal(model, np.array(encoding.ids), np.array([tokenizer.bos_token_id]))
    starts = np.array([o[0] for o in encoding.offsets])
    naive = []
    for s, e in zip(units.start, units.end):
        inside = surprisal[(starts >= s) & (starts < e)]
        naive.append(inside.mean() if len(inside) else np.nan)
    naive = np.array(naive)
    ok = ~np.isnan(naive)
    assert np.corrcoef(units.score[ok], naive[ok])[0, 1] > 0.999


def test_query_changes_the_ranking(tiny_lm):
    docs = [Document(wiki_text(800, offset=i * 5_000), f"d{i}") for i in range(3)]
    compressor = PerplexityCompressor(model=tiny_lm)
    plain = compressor.score_units(make_request(docs, None)).score
    with_query = compressor.score_units(make_request(docs, "What happened in 1995?")).score
    assert not np.allclose(plain, with_query)
    relevance_only = PerplexityCompressor(model=tiny_lm, query_mode="relevance").score_units(make_request(docs, "What?")).score
    # Relevance shifts whole documents: within a document the scores only move together.
    doc = compressor.score_units(make_request(docs, None)).doc
    for d in range(3):
        assert np.corrcoef(relevance_only[doc == d], plain[doc == d])[0, 1] > 0.999
    offsets = [np.mean(relevance_only[doc == d] - plain[doc == d]) for d in range(3)]
    assert np.ptp(offsets) > 0.1


def test_bad_options_are_clear_errors():
    with pytest.raises(InvalidInputError):
        PerplexityCompressor(unit="paragraph")
    with pytest.raises(InvalidInputError):
        PerplexityCompressor(query_mode="magic")
    with pytest.raises(InvalidInputError):
        PerplexityCompressor(window=512, max_context=256)


def test_edge_inputs(tiny_lm):
    compressor = PerplexityCompressor(model=tiny_lm)
    assert compressor.compress("", budget=Budget(ratio=0.5)).text == ""
    assert compressor.compress("  \n ", budget=Budget(tokens=5)).compressed_tokens <= 5
    short = "  Already short.\n"
    assert compressor.compress(short, budget=Budget(tokens=50)).text == short
    with pytest.raises(BudgetTooSmallError):
        PerplexityCompressor(model=tiny_lm, protection=__import__("ctxzip").Protection(numbers=True)).compress(
            " ".join(str(i) for i in range(1000, 1300)), budget=Budget(tokens=30)
        )
    mixed = ("東京は日本の首都です。 مرحبا بالعالم. Emoji 🎉🚀 here. " * 20).strip()
    result = compressor.compress(mixed, budget=Budget(ratio=0.5))
    assert set(result.text) <= set(mixed) and result.compressed_tokens <= int(0.5 * get_token_counter().count(mixed))


def test_long_input_bounded_cache(tiny_lm):
    text = wiki_text(50_000)
    n = get_token_counter().count(text)
    result = PerplexityCompressor(model=tiny_lm, max_context=1024).compress(text, budget=Budget(ratio=0.3))
    assert 0.97 * int(0.3 * n) <= result.compressed_tokens <= int(0.3 * n)


def test_phrase_spans_cover_text():
    text = "First clause, second one; third: fourth.\nNew line item\n  - bullet"
    starts, ends = phrase_spans(text)
    assert "".join(text[s:e] for s, e in zip(starts, ends)) == text
    assert len(starts) >= 5


def test_cli_perplexity(tiny_lm, tmp_path):
    from typer.testing import CliRunner

    from ctxzip.cli import app

    source = tmp_path / "in.txt"
    source.write_text(wiki_text(3_000), encoding="utf-8")
    out = CliRunner().invoke(app, ["compress", str(source), "--method", "perplexity", "--model", tiny_lm, "--ratio", "0.4", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["method"] == "perplexity" and data["compressed_tokens"] <= data["budget_tokens"]


@pytest.mark.slow
def test_real_smollm2_finds_a_repeated_sentence_predictable():
    sentence = "The committee met in Geneva on a rainy Tuesday to discuss the new budget rules."
    text = f"{sentence} Then everyone went home. {sentence}"
    units = PerplexityCompressor().score_units(make_request([Document(text)], None))
    n = len(units) // 2
    first, second = units.score[:6].mean(), units.score[-6:].mean()
    assert second < first  # the copy is predictable from the first occurrence
    result = PerplexityCompressor().compress(text, budget=Budget(tokens=20))
    assert result.compressed_tokens <= 20
