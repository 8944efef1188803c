"""The `ctxzip` command. Errors a user can cause print one line and exit 2, never a traceback."""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path
from typing import Optional

import typer

from ctxzip.errors import CtxzipError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Compress prompts, context, code and KV caches under a token budget.")

# Sub-commands owned by other parts of the project: name -> "module:typer_app".
_SUBCOMMANDS = {
    "kv": "ctxzip.kv.cli:app",
    "corpus": "ctxzip.corpus.cli:app",
    "serve": "ctxzip_service.cli:app",
}


def fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def read_input(path: str) -> str:
    """Text from a file or stdin ("-"), refusing binary data."""
    if path == "-":
        data = sys.stdin.buffer.read()
    else:
        file = Path(path)
        if not file.is_file():
            fail(f"no such file: {path}")
        data = file.read_bytes()
    if b"\x00" in data:
        fail(f"{path} looks binary (it contains NUL bytes); ctxzip compresses text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        fail(f"{path} is not UTF-8 text")


def parse_options(pairs: list[str]) -> dict:
    """--option key=value pairs; values are read as JSON when they parse, else kept as strings."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            fail(f"--option expects key=value, got {pair!r}")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def parse_documents(text: str) -> list[dict]:
    """A JSON list, or JSON lines, of {"text", "id"?, "metadata"?} objects."""
    try:
        data = json.loads(text)
        return data if isinstance(data, list) else [data]
    except json.JSONDecodeError:
        pass
    try:
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError as exc:
        fail(f"--docs input is neither a JSON list nor JSON lines: {exc}")


@app.command()
def compress(
    path: str = typer.Argument("-", help="File to compress, or - for standard input."),
    method: str = typer.Option("extractive", "--method", "-m", help="Compression method (see `ctxzip methods`)."),
    budget: Optional[int] = typer.Option(None, "--budget", "-b", help="Maximum tokens of the output."),
    ratio: Optional[float] = typer.Option(None, "--ratio", "-r", help="Output tokens as a share of the input's."),
    query: Optional[str] = typer.Option(None, "--query", "-q", help="The question the context must answer."),
    tokenizer: str = typer.Option("cl100k_base", "--tokenizer", help="tiktoken encoding or Hugging Face tokenizer."),
    model: Optional[str] = typer.Option(None, "--model", help="Model name, local path or hub id for the method."),
    option: list[str] = typer.Option([], "--option", "-o", help="Method option as key=value (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="Print the full result as JSON."),
    docs: bool = typer.Option(False, "--docs", help="Input is a JSON list or JSON lines of {text, id, metadata}."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar and no summary line on stderr."),
    verbose: bool = typer.Option(False, "--verbose", help="Show third-party model loading output (load reports, bars)."),
) -> None:
    """Compress a text file under a token budget."""
    from ctxzip.budget import Budget
    from ctxzip.models import VERBOSE_ENV
    from ctxzip.progress import progress_bar
    from ctxzip.registry import create_compressor

    if verbose:
        os.environ[VERBOSE_ENV] = "1"

    if (budget is None) == (ratio is None):
        fail("give exactly one of --budget N or --ratio R")
    text = read_input(path)
    inputs = parse_documents(text) if docs else text
    options = parse_options(option)
    if model is not None:
        options["model"] = model
    try:
        chosen = Budget(tokens=budget, tokenizer=tokenizer) if budget is not None else Budget(ratio=ratio, tokenizer=tokenizer)
        chosen.counter  # fail early on an unknown tokenizer
        compressor = create_compressor(method, **options)
        with progress_bar(enabled=False if quiet else None):  # a bar only on a terminal
            result = compressor.compress(inputs, query=query, budget=chosen)
    except CtxzipError as exc:
        fail(str(exc))
    except TypeError as exc:  # an option the method does not take
        fail(f"bad option for method {method!r}: {exc}")
    if as_json:
        typer.echo(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
    else:
        typer.echo(result.text)
    if not quiet and not as_json:
        typer.echo(
            f"\n[{result.method}] {result.original_tokens} -> {result.compressed_tokens} tokens "
            f"(ratio {result.ratio:.3f}, budget {result.budget_tokens}) in {result.timings.get('total', 0):.2f}s",
            err=True,
        )


@app.command()
def methods() -> None:
    """List the compression methods installed."""
    from ctxzip.registry import available_methods

    for name in available_methods():
        typer.echo(name)


@app.command()
def models(as_json: bool = typer.Option(False, "--json")) -> None:
    """List the models ctxzip can use offline, where they come from and their licence."""
    from rich.console import Console
    from rich.table import Table

    from ctxzip.models import list_models

    rows = list_models()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("name", "alias", "role", "package", "licence", "available")
    for row in rows:
        table.add_row(row["name"], row["alias"], row["role"], row["package"], row["licence"], row["available"])
    Console().print(table)


def _add_subcommands(only: str | None = None) -> None:
    """Attach the sub-command apps; with `only`, just that one (importing the others costs seconds)."""
    for name, target in _SUBCOMMANDS.items():
        if only is not None and name != only:
            continue
        module, _, attr = target.partition(":")
        try:
            sub = getattr(importlib.import_module(module), attr)
        except ImportError:
            continue  # that part (or its extra) is not installed
        app.add_typer(sub, name=name)


def main() -> None:
    first = next((arg for arg in sys.argv[1:] if not arg.startswith("-")), None)
    _add_subcommands(first if first in _SUBCOMMANDS else None if first is None else "")
    app()


if __name__ == "__main__":
    main()
