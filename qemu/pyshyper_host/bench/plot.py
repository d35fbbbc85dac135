"""PNG charts for the benchmark reports (matplotlib, the `bench` extra: `pip install -e '.[bench]'`).

matplotlib is a well-kept library that beats drawing bars by hand; it is only needed by `just bench*`, so it is an
optional dependency and a missing one costs the picture, never the Markdown report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path


def bar_chart(
    path: Path, title: str, groups: list[str], series: Mapping[str, Sequence[float | None]], ylabel: str
) -> bool:
    """Grouped bars: one group per label in `groups`, one bar per series (None: no bar). False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"(no PNG chart: matplotlib is not installed; `pip install -e '.[bench]'` for {path.name})")
        return False
    n = max(1, len(series))
    width = 0.8 / n
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=110)
    for k, (name, values) in enumerate(series.items()):
        xs = [i + (k - (n - 1) / 2) * width for i in range(len(groups))]
        ys = [v if v is not None else 0.0 for v in values]
        bars = ax.bar(xs, ys, width, label=name)
        for b, v in zip(bars, values, strict=True):
            if v is not None:
                ax.annotate(
                    f"{v:.2f}", (b.get_x() + b.get_width() / 2, b.get_height()), ha="center", va="bottom", fontsize=8
                )
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if n > 1:
        ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return True
