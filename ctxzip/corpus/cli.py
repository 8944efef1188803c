"""`ctxzip corpus IN OUT --method M (--budget N | --ratio R) ...`: compress a corpus file offline."""

from __future__ import annotations

import json
from typing import Optional

import typer

from ctxzip.errors import CtxzipError

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False,
                  # a group stops reading options at its first argument unless told otherwise
                  context_settings={"allow_interspersed_args": True}, subcommand_metavar="",
                  help="Compress every record of a JSONL, gzipped JSONL or Parquet file (resumable).")


def _parse_options(pairs: list[str]) -> dict:
    """--option key=value pairs; values are read as JSON when they parse, else kept as strings."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"--option expects key=value, got {pair!r}")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


@app.callback(invoke_without_command=True)
def corpus(
    input: str = typer.Argument(..., help="Input file: .jsonl, .jsonl.gz or .parquet."),
    output: str = typer.Argument(..., help="Output folder (shards, manifest.json, errors.jsonl, summary.json)."),
    method: str = typer.Option(..., "--method", "-m", help="Compression method, or package.module:Class."),
    budget: Optional[int] = typer.Option(None, "--budget", "-b", help="Maximum tokens per record."),
    ratio: Optional[float] = typer.Option(None, "--ratio", "-r", help="Tokens kept per record, as a share."),
    text_field: str = typer.Option("text", "--text-field", help="Field holding the text to compress."),
    id_field: str = typer.Option("id", "--id-field", help="Field holding the record id (reported in errors)."),
    query_field: Optional[str] = typer.Option(None, "--query-field", help="Field holding each record's query."),
    output_field: Optional[str] = typer.Option(None, "--output-field", help="Where the compressed text goes (default: the text field)."),
    output_format: Optional[str] = typer.Option(None, "--output-format", help="jsonl, jsonl.gz or parquet (default: the input's)."),
    tokenizer: str = typer.Option("cl100k_base", "--tokenizer", help="tiktoken encoding or Hugging Face tokenizer."),
    option: list[str] = typer.Option([], "--option", "-o", help="Method option as key=value (repeatable)."),
    engine: str = typer.Option("local", "--engine", help="local or ray."),
    workers: int = typer.Option(1, "--workers", "-w", help="Worker processes (local) or model actors (ray)."),
    shard_size: int = typer.Option(1000, "--shard-size", help="Records per output shard."),
    batch_size: int = typer.Option(32, "--batch-size", help="Records per model batch."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar on stderr."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Discard an earlier job's output in OUT."),
) -> None:
    """Compress each record; rerun the same command after a crash to finish the job."""
    from ctxzip.corpus import CorpusJob, run_corpus_job

    try:
        job = CorpusJob(
            input, output, method, budget=budget, ratio=ratio, tokenizer=tokenizer,
            method_options=_parse_options(option), text_field=text_field, id_field=id_field,
            query_field=query_field, output_field=output_field, output_format=output_format,
            shard_size=shard_size, batch_size=batch_size, engine=engine, workers=workers,
            progress=progress, overwrite=overwrite,
        )
        summary = run_corpus_job(job)
    except CtxzipError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
    except OSError as exc:  # an output folder under a file, no permission, a full disk
        typer.echo(f"error: {exc.strerror or exc}: {exc.filename or output}", err=True)
        raise typer.Exit(2)
    typer.echo(json.dumps(summary, indent=2))
