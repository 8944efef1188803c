"""The promises the README makes for every compression method, as one check (`check_contract`).

`tests/test_contract.py` runs it for every registered method; `FACTORIES` says how to build a method
that needs a model (a tiny local one, so the check stays fast). A new method needs nothing here
unless it needs a model.
"""

from __future__ import annotations

from typing import Callable

from ctxzip import Budget, Document, Protection, get_token_counter
from ctxzip.document import rebuild
from ctxzip.errors import CtxzipError, InvalidBudgetError, InvalidInputError
from ctxzip.registry import create_compressor

DOCUMENTS = [
    Document("The Mars rover landed in 2021 near Jezero crater. It carried a small helicopter called Ingenuity. "
             "Ingenuity flew 72 times before a rotor blade broke. The rover keeps collecting rock samples.",
             "mars", {"source": "nasa", "rank": 1}),
    Document("火星有两颗卫星。火卫一比火卫二大得多。They orbit close to the planet and are probably captured asteroids.",
             "moons", {"lang": "zh"}),
    Document("المريخ كوكب أحمر. Olympus Mons 🌋 is the tallest volcano in the solar system. Its base is 600 km wide.",
             "geology", {"lang": "ar"}),
]
QUERY = "How many times did Ingenuity fly?"
PROTECTED = Protection(patterns=(r"Jezero",))
TOKENIZERS = ("cl100k_base", "smollm2")

Factory = Callable[..., object]  # options -> compressor


def factories(tiny_lm: str, tiny_token_classifier: str) -> dict[str, Factory]:
    """Methods that need a model get a tiny local one; the rest are built from the registry as they are."""
    token = {"model": tiny_token_classifier, "question_model": None, "quantize": None}
    return {
        "token": lambda **o: create_compressor("token", **token, **o),
        "perplexity": lambda **o: create_compressor("perplexity", model=tiny_lm, **o),
        "code": lambda **o: create_compressor("code", model=tiny_lm, **o),
        "cascade": lambda **o: create_compressor("cascade", second_options=token, **o),
    }


def check_provenance(result, documents: list[Document]) -> None:
    """The output is slices of the inputs plus reported insertions, ids and metadata traced."""
    originals = {d.id: d for d in documents}
    rebuilt = rebuild(documents, result.kept, result.inserted)
    for out in result.documents:
        assert out.id in originals, out.id
        assert out.metadata == originals[out.id].metadata
        assert rebuilt.get(out.id, "") == out.text, (out.id, out.text)
    assert set(rebuilt) <= {d.id for d in result.documents} | {k for k, v in rebuilt.items() if not v}
    assert result.text == "\n\n".join(d.text for d in result.documents)
    for span in result.kept:
        assert 0 <= span.start < span.end <= len(originals[span.doc_id].text), span
    for doc_id in {s.doc_id for s in result.kept}:  # ordered, disjoint slices per document
        spans = [s for s in result.kept if s.doc_id == doc_id]
        assert all(a.end <= b.start for a, b in zip(spans, spans[1:])), spans
    if "\ufffd" not in "".join(d.text for d in documents):
        assert "\ufffd" not in result.text  # no character cut in half


def check_contract(make: Factory) -> None:
    """Every promise of the README, on the same inputs; raises AssertionError on the first broken one."""
    compressor = make()
    full = "\n\n".join(d.text for d in DOCUMENTS)
    for tokenizer in TOKENIZERS:
        counter = get_token_counter(tokenizer)
        for ratio in (0.3, 0.6):
            budget = Budget(ratio=ratio, tokenizer=tokenizer)
            result = compressor.compress(DOCUMENTS, QUERY, budget)
            assert result.budget_tokens == int(ratio * counter.count(full))
            assert result.compressed_tokens <= result.budget_tokens, (tokenizer, ratio, result.compressed_tokens)
            assert counter.count(result.text) == result.compressed_tokens
            assert result.text.strip(), "an output that silently drops everything"
            check_provenance(result, DOCUMENTS)

    # Protected spans survive a tight budget.
    protected = make(protection=PROTECTED).compress(DOCUMENTS, QUERY, Budget(ratio=0.3))
    assert "Jezero" in protected.text
    check_provenance(protected, DOCUMENTS)

    # An input under budget comes back unchanged.
    unchanged = compressor.compress(DOCUMENTS, QUERY, Budget(tokens=10_000))
    assert unchanged.text == full and [d.text for d in unchanged.documents] == [d.text for d in DOCUMENTS]
    check_provenance(unchanged, DOCUMENTS)

    # Empty and whitespace-only inputs.
    assert compressor.compress("", QUERY, Budget(tokens=5)).text == ""
    assert compressor.compress([], QUERY, Budget(tokens=5)).text == ""
    blank = [Document(" \n\t " * 40, "blank")]
    result = compressor.compress(blank, QUERY, Budget(tokens=1))
    assert not result.text.strip() and result.compressed_tokens <= 1
    check_provenance(result, blank)

    # Bad input gets a clear ctxzip error.
    for call in (lambda: compressor.compress(DOCUMENTS, QUERY, Budget(tokens=0)),
                 lambda: compressor.compress(DOCUMENTS, QUERY, "half")):
        _raises(call, InvalidBudgetError)
    for call in (lambda: compressor.compress(DOCUMENTS, 42, Budget(ratio=0.5)),
                 lambda: compressor.compress([b"bytes"], QUERY, Budget(ratio=0.5)),
                 lambda: compressor.compress([Document("a", "x"), Document("b", "x")], QUERY, Budget(ratio=0.5)),
                 lambda: make(no_such_option=1)):
        _raises(call, InvalidInputError)


def _raises(call, error: type[CtxzipError]) -> None:
    try:
        call()
    except error:
        return
    raise AssertionError(f"expected {error.__name__}")
