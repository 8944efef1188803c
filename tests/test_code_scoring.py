"""Coarse and fine stages of the code compressor: perplexity-drop scoring in batches, knapsack, budgets."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from test_code_samples import SAMPLES
from ctxzip import Budget, Document
from ctxzip.code_analysis.plan import allocate_budgets, knapsack
from ctxzip.code_analysis.chunk_scorers import LexicalScorer, PerplexityDropScorer, identifiers
from ctxzip.code_analysis.render import parses
from ctxzip.compressors.code import CodeCompressor


def _naive_query_nll(scorer, context_ids, query_ids):
    """One unpadded forward over the whole sequence, loss on the query tokens: the reference."""
    import torch

    model, tokenizer = scorer._load()
    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    ids = torch.tensor([[start] + context_ids + query_ids])
    with torch.inference_mode():
        logits = model(input_ids=ids).logits[0, -len(query_ids) - 1:-1]
    return torch.nn.functional.cross_entropy(logits, torch.tensor(query_ids)).item()


def test_perplexity_drop_matches_unbatched_reference_and_batch_size(tiny_lm):
    chunks = ["def load(self, name):\n    return open(name).read()", "x = 1", "class A:\n    pass\n" * 5, ""]
    query = "def save(self, name, data):"
    small = PerplexityDropScorer(model=tiny_lm, device="cpu", batch_tokens=16)  # one row per forward
    large = PerplexityDropScorer(model=tiny_lm, device="cpu", batch_tokens=100_000)  # one padded batch
    a, b = small.score(chunks, query), large.score(chunks, query)
    np.testing.assert_allclose(a, b, atol=1e-4)
    _, tokenizer = large._load()
    query_ids = tokenizer("\n" + query, add_special_tokens=False)["input_ids"]
    empty = _naive_query_nll(large, [], query_ids)
    for chunk, score in zip(chunks, b):
        ids = tokenizer(chunk, add_special_tokens=False)["input_ids"]
        assert score == pytest.approx(empty - _naive_query_nll(large, ids, query_ids), abs=1e-4)
    assert b[-1] == pytest.approx(0.0, abs=1e-5)  # an empty chunk changes nothing
    assert large.forward_seconds > 0


def test_long_chunks_are_cut_to_their_head(tiny_lm):
    scorer = PerplexityDropScorer(model=tiny_lm, device="cpu", max_chunk_tokens=8)
    long_chunk = "alpha beta gamma delta epsilon zeta eta theta " * 20
    head_only = PerplexityDropScorer(model=tiny_lm, device="cpu", max_chunk_tokens=10_000)
    _, tokenizer = scorer._load()
    head = tokenizer.decode(tokenizer(long_chunk, add_special_tokens=False)["input_ids"][:8])
    assert scorer.score([long_chunk], "query")[0] == pytest.approx(head_only.score([head], "query")[0], abs=1e-4)


def test_code_compressor_with_a_causal_lm_scorer(tiny_lm):
    path, source = SAMPLES["python"]
    compressor = CodeCompressor(scorer="perplexity", fine_scorer="perplexity", model=tiny_lm, device="cpu")
    result = compressor.compress([Document(source, id=path)], query="def load(self, name):", budget=Budget(ratio=0.4))
    assert result.compressed_tokens <= result.budget_tokens and parses(result.text, "python")
    assert result.model == tiny_lm and result.timings["forward"] > 0
    assert result.timings["forward"] <= result.timings["total"]


def test_lexical_scorer_prefers_shared_rare_identifiers():
    texts = ["def parse_header(line):\n    return line.split(':')", "def write_body(stream):\n    stream.flush()", "x = 1"]
    scores = LexicalScorer().score(texts, "def parseHeader(raw_line): parse one header line")
    assert int(np.argmax(scores)) == 0 and scores[2] == 0
    assert "header" in identifiers("parseHeader") and "self" not in identifiers("self.x")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 12), st.floats(0.1, 5.0)), min_size=1, max_size=8), st.integers(0, 30))
def test_knapsack_is_optimal(items, capacity):
    weights = np.array([w for w, _ in items])
    values = np.array([v for _, v in items])
    chosen = knapsack(weights, values, capacity)
    assert weights[chosen].sum() <= capacity
    best = max(
        (values[list(c)].sum() for r in range(len(items) + 1) for c in itertools.combinations(range(len(items)), r)
         if weights[list(c)].sum() <= capacity),
        default=0.0,
    )
    assert values[chosen].sum() == pytest.approx(best)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 400), st.floats(-3, 3)), min_size=1, max_size=12), st.integers(1, 2000))
def test_budgets_fit_the_room_and_follow_the_scores(chunks, room):
    costs = np.array([c for c, _ in chunks])
    scores = np.array([s for _, s in chunks])
    budgets = allocate_budgets(costs, scores, room)
    assert budgets.sum() <= room and np.all(budgets <= costs) and np.all(budgets >= 0)
    assert budgets[int(np.argmax(scores))] > 0  # the best chunk always gets something
    if budgets.sum() < min(room, costs.sum()):
        assert budgets.sum() >= min(room, costs.sum()) - 1  # the room is used up
    rate = budgets / costs
    kept = np.flatnonzero((budgets > 0) & (budgets < costs))
    for i, j in itertools.combinations(kept, 2):  # among partly kept chunks, retention follows the score
        if scores[i] > scores[j]:
            assert rate[i] >= rate[j] - 1.0 / costs[i] - 1e-9  # up to rounding to whole tokens
