"""Offline corpus jobs: a JSONL / gzipped JSONL / Parquet file in, compressed shards out (see `job`)."""

from ctxzip.corpus.job import CorpusJob, run_corpus_job
from ctxzip.corpus.shards import CorpusJobError, read_output

__all__ = ["CorpusJob", "CorpusJobError", "run_corpus_job", "read_output"]
