"""WikiText-2 test text from ../shared/data, for tests that need real prose."""

import os

DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "wikitext2", "wiki.test.raw")


def wiki_text(chars: int, offset: int = 0) -> str:
    with open(DATA, encoding="utf-8") as f:
        return f.read(offset + chars)[offset:].replace("\r\n", "\n")
