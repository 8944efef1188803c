"""Writing results: a markdown file per benchmark and a PNG of quality against compression ratio."""

from __future__ import annotations

import datetime
import platform
from pathlib import Path
from typing import Mapping, Sequence

RESULTS = Path(__file__).resolve().parent / "results"


def machine_line() -> str:
    import os

    return f"{platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}"


def write_results(name: str, markdown: str) -> Path:
    """Write eval/results/<name>.md with a footer saying when and where it was measured."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.md"
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    path.write_text(f"{markdown.rstrip()}\n\n_Measured {stamp} on {machine_line()}._\n", encoding="utf-8")
    return path


def markdown_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    def cell(value) -> str:
        if isinstance(value, float):
            return f"{value:.3f}"
        return str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def plot_quality_vs_ratio(name: str, series: Mapping[str, Sequence[tuple[float, float]]], ylabel: str, title: str = "") -> Path:
    """One line per method: x = achieved compression ratio (compressed/original), y = quality."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for label, points in series.items():
        points = sorted(points)
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
    ax.set_xlabel("compressed tokens / original tokens")
    ax.set_ylabel(ylabel)
    ax.set_title(title or name)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.png"
    fig.savefig(path)
    plt.close(fig)
    return path
