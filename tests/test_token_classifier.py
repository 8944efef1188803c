"""TokenClassifierCompressor on tiny random-weight checkpoints of the two LLMLingua-2 architectures."""

import resource

import numpy as np
import pytest
from wiki import wiki_text

from ctxzip.compressors.base import make_request
from ctxzip import Budget, Document, Protection
from ctxzip.budget import get_token_counter
from ctxzip.compressors.token_classifier import TokenClassifierCompressor
from ctxzip.errors import BudgetTooSmallError, ModelNotAvailableError
from ctxzip.select import DOCUMENT_SEPARATOR
from tests.support.tiny_models import save_tiny_bert_token_classifier, save_tiny_xlmr_token_classifier



@pytest.fixture(scope="module")
def bert_path(tmp_path_factory):
    # The folder name selects llmlingua's WordPiece rules, as for the published mBERT checkpoint.
    return str(save_tiny_bert_token_classifier(tmp_path_factory.mktemp("m") / "tiny-bert-base-multilingual-cased"))


@pytest.fixture(scope="module")
def xlmr_path(tmp_path_factory):
    corpus = wiki_text(150_000).split("\n")
    return str(save_tiny_xlmr_token_classifier(tmp_path_factory.mktemp("m") / "tiny-xlm-roberta-large", corpus))


def assert_sliced_from(result, documents):
    """The output is, per document, an ordered concatenation of the kept spans of the original."""
    by_id = {d.id: d.text for d in documents}
    pieces: dict[str, list[str]] = {}
    for span in result.kept:
        pieces.setdefault(span.doc_id, []).append(by_id[span.doc_id][span.start : span.end])
    rebuilt = [("".join(pieces[d.id])).lstrip() for d in documents if d.id in pieces]
    assert result.text == DOCUMENT_SEPARATOR.join(t for t in rebuilt if t)
    for a, b in zip(result.kept, result.kept[1:]):
        assert a.doc_id != b.doc_id or a.end <= b.start


def test_defaults_are_the_embedded_distilled_models():
    compressor = TokenClassifierCompressor()
    assert compressor.model == "ctxzip/lingua-minilm-v1"
    assert compressor.question_model == "ctxzip/lingua-minilm-qa-v1"
    # a user's own checkpoint is used for queries too unless a question model is named
    assert TokenClassifierCompressor(model="some/checkpoint").question_model is None


def test_default_model_drops_stop_words_before_content_words():
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    text = wiki_text(6_000, offset=20_000)
    result = TokenClassifierCompressor().compress(text, budget=Budget(ratio=0.5))

    def stop_share(t):
        words = [w.strip(".,;:()\"'").lower() for w in t.split()]
        return np.mean([w in ENGLISH_STOP_WORDS for w in words if w])

    assert result.compressed_tokens <= result.budget_tokens
    assert stop_share(result.text) < 0.8 * stop_share(text)


def test_question_aware_model_reads_query_then_window(bert_path, monkeypatch):
    compressor = TokenClassifierCompressor(model=bert_path, question_model=bert_path, quantize=None, window_tokens=64)
    loaded = compressor.classifier_for("any query")  # the cached object compress() will use
    monkeypatch.setattr(loaded, "question_aware", True)
    seen = []
    original = type(loaded).keep_probabilities

    def spy(self, sequences, **kwargs):
        seen.extend(sequences)
        return original(self, sequences, **kwargs)

    monkeypatch.setattr(type(loaded), "keep_probabilities", spy)
    text = wiki_text(3_000)
    result = compressor.compress(text, query="Who built the tower?", budget=Budget(tokens=100))
    tokenizer = loaded.tokenizer
    query_ids = loaded.encode("Who built the tower?").ids.tolist()
    head = [tokenizer.cls_token_id, *query_ids, tokenizer.sep_token_id]
    assert len(seen) > 2 and all(s[: len(head)].tolist() == head for s in seen)
    assert all(len(s) <= 64 and s[-1] == tokenizer.sep_token_id for s in seen)
    assert result.compressed_tokens <= 100
    assert_sliced_from(result, [Document(text, "0")])
    seen.clear()
    compressor.compress(text, budget=Budget(tokens=100))  # no query: plain windows
    assert seen and all(s[1] != head[1] or s[: len(head)].tolist() != head for s in seen)


def test_an_encoder_without_a_token_head_is_refused_unless_asked(tmp_path):
    from transformers import BertConfig, BertModel

    BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16)).save_pretrained(tmp_path / "bare")
    with pytest.raises(ModelNotAvailableError, match="not a token classifier"):
        TokenClassifierCompressor(model=str(tmp_path / "bare")).compress("some words " * 50, budget=10)


@pytest.mark.parametrize("arch", ["bert", "xlmr"])
@pytest.mark.parametrize("tokens", [40, 333, 1200])
def test_budget_is_met_and_output_is_sliced(arch, tokens, bert_path, xlmr_path):
    path = bert_path if arch == "bert" else xlmr_path
    text = wiki_text(12_000)
    result = TokenClassifierCompressor(model=path, quantize=None).compress(text, budget=Budget(tokens=tokens))
    assert result.compressed_tokens <= tokens
    assert result.compressed_tokens >= 0.97 * tokens  # one global selection fills the budget
    assert result.compressed_tokens == get_token_counter().count(result.text)
    assert_sliced_from(result, [Document(text, "0")])


def test_budget_in_a_hugging_face_tokenizer(bert_path):
    text = wiki_text(6_000)
    budget = Budget(tokens=300, tokenizer=bert_path)
    result = TokenClassifierCompressor(model=bert_path, quantize=None).compress(text, budget=budget)
    assert 0.97 * 300 <= result.compressed_tokens <= 300


def test_higher_keep_probability_words_are_kept_first(bert_path):
    text = wiki_text(5_000)
    compressor = TokenClassifierCompressor(model=bert_path, quantize=None)
    counter = get_token_counter()
    units = compressor.score_units(make_request([Document(text, "0")], None))
    result = compressor.compress(text, budget=Budget(ratio=0.4))
    kept = np.zeros(len(units), dtype=bool)
    for span in result.kept:
        kept |= (units.start >= span.start - 1) & (units.end <= span.end)
    # Every kept unit scores at least as high as the best dropped one, up to the solver's small repairs.
    assert np.mean(units.score[kept]) > np.mean(units.score[~kept])
    assert np.quantile(units.score[kept], 0.1) >= np.quantile(units.score[~kept], 0.5)


@pytest.mark.parametrize("arch", ["bert", "xlmr"])
@pytest.mark.parametrize("digits", [False, True])
def test_llmlingua_compatible_keeps_the_same_words_as_llmlingua(arch, digits, bert_path, xlmr_path):
    get_token_counter("cl100k_base")  # installs the offline cl100k file llmlingua's tiktoken needs
    from llmlingua import PromptCompressor

    from ctxzip.token_scoring.llmlingua_compat import llmlingua_keep, llmlingua_words

    path = bert_path if arch == "bert" else xlmr_path
    text = wiki_text(7_000, offset=20_000)
    target = 500
    reference = PromptCompressor(model_name=path, device_map="cpu", use_llmlingua2=True)
    expected = reference.compress_prompt_llmlingua2([text], target_token=target, return_word_label=True, force_reserve_digit=digits)
    pairs = [item.rsplit(" ", 1) for item in expected["fn_labeled_original_prompt"].split("\t\t|\t\t")]

    compressor = TokenClassifierCompressor(model=path, llmlingua_compatible=True, keep_digits=digits)
    words = llmlingua_words(compressor.classifier, text, force_reserve_digit=digits)
    labels = llmlingua_keep(words, 1 - target / get_token_counter().count(text))
    assert [w.lstrip("▁") for w in words.texts] == [w for w, _ in pairs]
    assert labels.astype(int).tolist() == [int(label) for _, label in pairs]
    assert 0 < labels.sum() < len(labels)

    # Through compress(): exactly those words, sliced from the original text, unless over budget.
    result = compressor.compress(text, budget=Budget(tokens=target))
    assert result.compressed_tokens <= target
    assert_sliced_from(result, [Document(text, "0")])
    unit_starts, unit_ends = np.r_[0, words.ends[:-1]], words.ends.copy()
    unit_ends[-1] = len(text)
    expected_text = "".join(text[s:e] for s, e, k in zip(unit_starts, unit_ends, labels) if k).lstrip()
    if get_token_counter().count(expected_text) <= target:
        assert result.text == expected_text
    else:  # trimmed to fit: a subset of llmlingua's words
        allowed = np.zeros(len(text) + 1, dtype=bool)
        for s, e, k in zip(unit_starts, unit_ends, labels):
            allowed[s:e] |= bool(k)
        assert all(allowed[span.start : span.end].all() for span in result.kept)


def test_force_tokens_digits_and_protected_spans_survive(bert_path):
    text = wiki_text(6_000) + "\nThe code is ZX-42 and the year 1987 matters."
    compressor = TokenClassifierCompressor(
        model=bert_path, quantize=None, force_tokens=("ZX-42",), keep_digits=True, protection=Protection(patterns=(r"matters",))
    )
    result = compressor.compress(text, budget=Budget(ratio=0.3))
    assert "ZX-42" in result.text and "1987" in result.text and "matters" in result.text
    assert result.compressed_tokens <= int(0.3 * get_token_counter().count(text))


def test_budget_smaller_than_protected_spans_raises(bert_path):
    text = " ".join(str(1000 + i) for i in range(300))
    with pytest.raises(BudgetTooSmallError):
        TokenClassifierCompressor(model=bert_path, keep_digits=True).compress(text, budget=Budget(tokens=50))


@pytest.mark.parametrize("text", ["", "   \n\t  "])
def test_empty_and_whitespace_inputs_come_back_unchanged(text, bert_path):
    result = TokenClassifierCompressor(model=bert_path).compress(text, budget=Budget(ratio=0.5))
    assert result.text == text.strip() or result.text == text
    assert result.compressed_tokens <= max(result.original_tokens, 0)


def test_input_under_budget_is_returned_unchanged(bert_path):
    text = "  Short text,\n  kept  as is.  "
    result = TokenClassifierCompressor(model=bert_path).compress(text, budget=Budget(tokens=100))
    assert result.text == text and result.info.get("unchanged")


def test_mixed_scripts_keep_their_characters(bert_path, xlmr_path):
    text = ("東京は日本の首都です。 مرحبا بالعالم، هذه جملة عربية. Emoji 🎉🚀 stay intact! " * 30).strip()
    for path in (bert_path, xlmr_path):
        result = TokenClassifierCompressor(model=path, quantize=None).compress(text, budget=Budget(ratio=0.5))
        assert result.compressed_tokens <= int(0.5 * get_token_counter().count(text))
        assert set(result.text) <= set(text)
        assert any(ch in result.text for ch in "東京日本首都") and any(ch in result.text for ch in "مرحبا")
        assert_sliced_from(result, [Document(text, "0")])


def test_document_filter_drops_the_least_likely_documents_first(bert_path):
    docs = [Document(wiki_text(1_500, offset=i * 3_000), f"d{i}") for i in range(6)]
    compressor = TokenClassifierCompressor(model=bert_path, quantize=None, document_filter=0.5)
    units = compressor.score_units(make_request(docs, None))
    means = np.array([units.score[units.doc == i].mean() for i in range(6)])
    assert (means < -0.5).sum() == 3  # three documents pushed below every kept one
    result = compressor.compress(docs, budget=Budget(ratio=0.3))
    dropped = {f"d{i}" for i in np.flatnonzero(means < -0.5)}
    assert not dropped & {span.doc_id for span in result.kept}


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_int8_quantized_forward_runs_and_agrees_with_fp32(bert_path, backend, tmp_path, monkeypatch):
    monkeypatch.setenv("CTXZIP_HOME", str(tmp_path))  # the ONNX export goes to a fresh cache
    text = wiki_text(8_000)
    fp32 = TokenClassifierCompressor(model=bert_path, quantize=None)
    int8 = TokenClassifierCompressor(model=bert_path, quantize="int8", backend=backend)
    assert int8.classifier.quantized and not fp32.classifier.quantized
    assert int8.classifier.backend == backend
    a = fp32.score_units(make_request([Document(text)], None)).score
    b = int8.score_units(make_request([Document(text)], None)).score
    assert np.corrcoef(a, b)[0, 1] > 0.9
    assert int8.compress(text, budget=Budget(tokens=400)).compressed_tokens <= 400


def test_an_exported_onnx_model_reloads_without_transformers(bert_path, tmp_path, monkeypatch):
    from ctxzip.token_scoring.classifier import load_token_classifier
    from ctxzip.token_scoring.light_tokenizer import LightTokenizer

    monkeypatch.setenv("CTXZIP_HOME", str(tmp_path))
    load_token_classifier.cache_clear()  # an earlier test may hold this model, exported elsewhere
    text = wiki_text(4_000)
    first = TokenClassifierCompressor(model=bert_path, quantize="int8", backend="onnx")
    assert first.classifier.model is not None  # the first load exports from the torch model
    expected = first.score_units(make_request([Document(text)], "a query")).score
    load_token_classifier.cache_clear()
    again = TokenClassifierCompressor(model=bert_path, quantize="int8", backend="onnx")
    light = again.classifier
    assert light.model is None and isinstance(light.tokenizer, LightTokenizer) and light.backend == "onnx"
    assert light.max_length == first.classifier.max_length
    assert np.array_equal(again.score_units(make_request([Document(text)], "a query")).score, expected)
    # llmlingua-compatible mode needs the transformers tokenizer
    assert TokenClassifierCompressor(model=bert_path, quantize="int8", llmlingua_compatible=True).classifier.model is not None
    load_token_classifier.cache_clear()


def test_a_200k_token_input_runs_with_bounded_memory(bert_path):
    text = wiki_text(1_000_000)
    counter = get_token_counter()
    n = counter.count(text)
    assert n > 200_000
    result = TokenClassifierCompressor(model=bert_path, quantize=None).compress(text, budget=Budget(tokens=n // 3))
    assert n // 3 * 0.97 <= result.compressed_tokens <= n // 3
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    assert peak_gb < 3.0


def test_cli_compress_with_a_local_model(bert_path, tmp_path):
    from typer.testing import CliRunner

    from ctxzip.cli import app

    source = tmp_path / "in.txt"
    source.write_text(wiki_text(4_000), encoding="utf-8")
    out = CliRunner().invoke(app, ["compress", str(source), "--method", "token", "--model", bert_path, "--budget", "200", "--json"])
    assert out.exit_code == 0, out.output
    import json

    data = json.loads(out.stdout)
    assert data["method"] == "token" and data["compressed_tokens"] <= 200


PASSAGES = [
    Document("Mars is the fourth planet from the Sun. Mars has two small moons named Phobos and Deimos. "
             "The weather on Mars is cold and dry.", "mars", {"rank": 0}),
    Document("Jupiter is the largest planet. Jupiter has a great red spot. It has dozens of moons.", "jupiter"),
    Document("Bread is made from flour, water and yeast. Bakers knead dough in the morning.", "bread"),
]


def test_cascade_keeps_tokens_only_inside_the_sentences_it_chose(bert_path):
    from ctxzip.compressors.extractive import ExtractiveCompressor

    compressor = TokenClassifierCompressor(model=bert_path, question_model=None, allow_random_head=True,
                                           sentence_options={"scorer": "bm25", "rounds": 1}, token_keep=0.75)
    budget = Budget(tokens=14)
    result = compressor.compress(PASSAGES, query="What are the moons of Mars called?", budget=budget)
    cascade = result.info["cascade"]
    assert cascade["stages"][0].startswith("sentences") and cascade["token_keep"] == 0.75
    assert cascade["sentence_budget_tokens"] == 18  # floor(14 / 0.75)
    chosen = ExtractiveCompressor(scorer="bm25", rounds=1).compress(
        PASSAGES, query="What are the moons of Mars called?", budget=Budget(tokens=18))
    inside = lambda span: any(k.doc_id == span.doc_id and k.start <= span.start and span.end <= k.end  # noqa: E731
                              for k in chosen.kept)
    assert result.kept and all(inside(span) for span in result.kept)
    assert result.compressed_tokens <= 14
    assert_sliced_from(result, PASSAGES)


def test_cascade_runs_only_with_a_query_and_several_documents(bert_path):
    compressor = TokenClassifierCompressor(model=bert_path, question_model=None, allow_random_head=True,
                                           sentence_options={"scorer": "bm25"})
    assert compressor.compress(PASSAGES, query=None, budget=20).info["cascade"] is False
    assert compressor.compress(PASSAGES[0], query="moons?", budget=10).info["cascade"] is False
    assert compressor.compress(PASSAGES, query="moons?", budget=20).info["cascade"]["sentences_kept"] > 0
    plain = TokenClassifierCompressor(model=bert_path, question_model=None, allow_random_head=True, cascade=False)
    assert plain.compress(PASSAGES, query="moons?", budget=20).info == {"cascade": False, "unit": "entity"}


def test_cascade_budget_curve_scores_sentences_once(bert_path, monkeypatch):
    compressor = TokenClassifierCompressor(model=bert_path, question_model=None, allow_random_head=True,
                                           sentence_options={"scorer": "bm25"})
    stage = compressor._sentence_stage()
    calls = []
    original = type(stage).score_units
    monkeypatch.setattr(type(stage), "score_units", lambda self, request: calls.append(1) or original(self, request))
    results = compressor.compress_budgets(PASSAGES, "moons of Mars?", [30, 20, 10])
    assert len(calls) == 1 and [r.compressed_tokens <= b for r, b in zip(results, [30, 20, 10])] == [True] * 3


@pytest.mark.parametrize("option", [{"cascade": "yes"}, {"token_keep": 0.0}, {"token_keep": 1.5}, {"unit": "letter"}])
def test_bad_cascade_options_are_refused(option):
    from ctxzip.errors import InvalidInputError

    with pytest.raises(InvalidInputError):
        TokenClassifierCompressor(**option)


def test_cascade_compress_many_batches_the_sentence_stage_and_matches_single_calls(bert_path, monkeypatch):
    compressor = TokenClassifierCompressor(model=bert_path, question_model=None, allow_random_head=True,
                                           sentence_options={"scorer": "bm25"})
    items = [(PASSAGES, "What are the moons of Mars called?"), (PASSAGES[1:], "Which planet is largest?"),
             (PASSAGES[0], None)]
    single = [compressor.compress(docs, query, budget=20) for docs, query in items]
    stage = compressor._sentence_stage()
    batches = []
    original = type(stage).score_many
    monkeypatch.setattr(type(stage), "score_many", lambda self, requests: batches.append(len(requests))
                        or original(self, requests))
    many = compressor.compress_many(items, budget=20)
    assert batches == [2]  # the two cascading requests in one call; the third has no query
    assert [r.text for r in many] == [r.text for r in single]
    assert [r.info["cascade"] is False for r in many] == [False, False, True]
