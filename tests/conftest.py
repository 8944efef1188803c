import os

# Nothing may reach a model hub, here or in CI.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


@pytest.fixture(scope="module")
def upstream():
    """A recording OpenAI/Anthropic upstream on a real port (tests/support/upstream.py), one per module."""
    from tests.support.upstream import RecordingUpstream, UvicornThread

    recorder = RecordingUpstream()
    with UvicornThread(recorder.app()) as server:
        recorder.url = server.url
        yield recorder


@pytest.fixture(scope="session")
def tiny_lm(tmp_path_factory) -> str:
    """A 2-layer random-weight Llama with SmolLM2's tokenizer (for methods that need a causal LM)."""
    from tests.support.tiny_models import save_tiny_llama

    return str(save_tiny_llama(tmp_path_factory.mktemp("lm") / "tiny-llama"))


@pytest.fixture(scope="session")
def tiny_token_classifier(tmp_path_factory) -> str:
    """A small random-weight BERT token classifier on MiniLM's vocabulary."""
    from tests.support.tiny_models import save_tiny_bert_token_classifier

    return str(save_tiny_bert_token_classifier(tmp_path_factory.mktemp("tc") / "tiny-bert-base-multilingual-cased"))

from hypothesis import settings  # noqa: E402

# The same examples on every run, so CI fails only when the code does (not when hypothesis draws
# an unlucky case); `HYPOTHESIS_PROFILE=explore` draws fresh ones.
settings.register_profile("repeatable", derandomize=True, print_blob=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))
