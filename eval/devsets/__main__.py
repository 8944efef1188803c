"""`python -m eval.devsets build` builds and caches every dev set; `show NAME [PART]` prints one example."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from eval.devsets import build_all, load_devset

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["build"]:
        build_all()
        return 0
    if argv[:1] == ["show"] and len(argv) >= 2:
        example = load_devset(argv[1], argv[2] if len(argv) > 2 else "eval", limit=1)[0]
        print(example.question, example.answers, example.gold_spans[:3], example.meta)
        for doc in example.documents:
            print(f"--- {doc.id} ({len(doc.text)} chars)\n{doc.text[:300]}")
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())
