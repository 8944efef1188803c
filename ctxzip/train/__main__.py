"""`python -m ctxzip.train <job> [options]`: a tiny dispatcher to `ctxzip.train.<module>.main(argv)`.

Jobs are listed in JOBS; any other name is tried as a module of this package, so a new job is a
new file with a `main(argv)` function.
"""

from __future__ import annotations

import importlib
import sys

JOBS = {"sentence": "ctxzip.train.sentence_classifier", "context": "ctxzip.train.context_head", "lingua": "ctxzip.train.lingua"}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m ctxzip.train <job> [options]; jobs: " + ", ".join(sorted(JOBS)) + " (or a module name)")
        return 0 if argv else 2
    job, rest = argv[0], argv[1:]
    module = JOBS.get(job, f"ctxzip.train.{job}")
    try:
        entry = importlib.import_module(module).main
    except (ModuleNotFoundError, AttributeError):
        print(f"unknown training job {job!r}; known: {', '.join(sorted(JOBS))}", file=sys.stderr)
        return 2
    return int(entry(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
