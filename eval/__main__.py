"""`python -m eval run --task hotpotqa --methods truncate,random --ratios 0.1,0.17,0.33 --name baselines`"""

from __future__ import annotations

import typer

from eval.report import markdown_table, plot_quality_vs_ratio, write_results
from eval.runner import TASKS, parse_methods, run

app = typer.Typer(add_completion=False, no_args_is_help=True)


@app.callback()
def main() -> None:
    """ctxzip evaluation harness."""


@app.command("run")
def run_command(
    task: str = typer.Option("hotpotqa", help=f"one of {sorted(TASKS)}"),
    methods: str = typer.Option("truncate,random", help="comma-separated methods, options as name:key=value;key=value"),
    ratios: str = typer.Option("0.1,0.17,0.33", help="budgets as shares of each example's tokens"),
    limit: int = typer.Option(300, help="number of eval examples"),
    name: str = typer.Option("baselines", help="results file name under eval/results/"),
    tokenizer: str = typer.Option("cl100k_base"),
) -> None:
    """Compare methods on one task's eval split and write eval/results/<name>.md and .png."""
    cases = TASKS[task]("eval", limit)
    specs = parse_methods(methods)
    ratio_values = [float(r) for r in ratios.split(",")]
    rows = run(cases, specs, ratio_values, tokenizer)
    metrics = [k for k in rows[0] if k not in {"method", "ratio", "examples", "errors"} and not k.endswith("_ci")]
    table = []
    for row in rows:
        cells = [row["method"], row["ratio"], row["examples"]]
        for key in metrics:
            value = row[key]
            if f"{key}_ci" in row:
                low, high = row[f"{key}_ci"]
                value = f"{value:.3f} [{low:.3f}, {high:.3f}]"
            cells.append(value)
        table.append(cells)
    quality = "supporting_recall" if "supporting_recall" in rows[0] else "answer_recall"
    series: dict[str, list[tuple[float, float]]] = {}
    for row in rows:
        series.setdefault(row["method"], []).append((row["achieved_ratio"], row[quality]))
    plot = plot_quality_vs_ratio(name, series, quality, f"{task}: {quality} against compression")
    markdown = (
        f"# {name}: {task} eval split, {len(cases)} examples\n\n"
        f"Command: `python -m eval run --task {task} --methods {methods} --ratios {ratios} --limit {limit} --name {name}`\n\n"
        f"Budget per example = floor(ratio x the example's {tokenizer} tokens). Metrics are means with 95% bootstrap "
        f"intervals; answer recall skips yes/no answers (they are not in the context); a supporting sentence counts "
        f"as kept when at least 80% of its characters survive.\n\n"
        + markdown_table(["method", "ratio", "examples", *metrics], table)
        + f"\n\n![{quality} against ratio]({plot.name})\n"
    )
    path = write_results(name, markdown)
    typer.echo(path.read_text())


if __name__ == "__main__":
    app()
