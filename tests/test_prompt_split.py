"""Splitting one unmarked prompt into context (to compress) and question (byte-identical)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ctxzip.prompt_split import split_prompt

PASSAGES = "\n\n".join(
    f"[{n}] Title {n}\nThe passage number {n} talks about rivers, mountains and the year {1900 + n}. It goes on for a while."
    for n in range(1, 6)
)
QUESTION = "Which passage mentions the year 1903?"

LAYOUTS = {
    "question_marker": (f"Answer using the context.\n\nContext:\n{PASSAGES}\n\nQuestion: {QUESTION}\nAnswer:", f"Question: {QUESTION}\nAnswer:"),
    "bold_query_marker": (f"{PASSAGES}\n\n**Query:** {QUESTION}", f"**Query:** {QUESTION}"),
    "context_tags": (f"<context>\n{PASSAGES}\n</context>\n\nUsing only the context above, answer: {QUESTION}",
                     f"Using only the context above, answer: {QUESTION}"),
    "document_tags": (f"<document id=1>{PASSAGES}</document>\n<document id=2>{PASSAGES}</document>\n{QUESTION}", QUESTION),
    "fence": (f"```\n{PASSAGES}\n```\n\n{QUESTION}", QUESTION),
    "rule": (f"{PASSAGES}\n\n---\n\n{QUESTION}", QUESTION),
    "last_paragraph": (f"Here are documents.\n\n{PASSAGES}\n\n{QUESTION}", QUESTION),
    "imperative_last_paragraph": (f"{PASSAGES}\n\nList the years the passages mention", "List the years the passages mention"),
    "question_sentences": (f"{PASSAGES} Is any of this true? {QUESTION}", f"Is any of this true? {QUESTION}"),
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_each_layout_splits_into_context_and_the_exact_question(layout):
    text, question = LAYOUTS[layout]
    split = split_prompt(text)
    assert split.sure, split.why
    assert split.question_text == question
    assert split.how == layout.replace("bold_query_marker", "question_marker").replace("document_tags", "context_tags") \
        .replace("imperative_last_paragraph", "last_paragraph")
    assert all("passage number" in text[s:e] for s, e in split.context)
    assert question not in "".join(text[s:e] for s, e in split.context)
    # Replacing the context leaves everything else byte-identical.
    rebuilt = split.rebuild(["X"] * len(split.context))
    assert rebuilt.endswith(text[split.question[0]:]) and question in rebuilt


@pytest.mark.parametrize("text", [
    PASSAGES,  # no question at all
    f"{PASSAGES}\n\nThe end.",  # a last paragraph that is neither a question nor a request
    f"Question: {QUESTION}",  # a question without context
    f"Short context.\n\nQuestion: {QUESTION}",  # context too small to be worth it
    f"<context>{PASSAGES}</context>",  # tags but no question anywhere else
    "",
])
def test_unsure_splits_leave_the_text_alone(text):
    split = split_prompt(text)
    assert not split.sure and not split.context and split.why


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_any_text_gives_spans_inside_it_and_a_lossless_rebuild(text):
    split = split_prompt(text)
    assert split.rebuild([text[s:e] for s, e in split.context]) == text
    spans = list(split.context) + ([split.question] if split.question else [])
    assert all(0 <= s <= e <= len(text) for s, e in spans)
    if split.sure:
        q0, _ = split.question
        assert all(e <= q0 or s >= split.question[1] for s, e in split.context)


def test_the_query_drops_the_label_and_the_answer_cue_but_the_question_span_keeps_them():
    split = split_prompt(LAYOUTS["question_marker"][0])
    assert split.query == QUESTION
    assert split.question_text == f"Question: {QUESTION}\nAnswer:"
