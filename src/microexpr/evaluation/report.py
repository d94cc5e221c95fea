"""Result directories: config, predictions, metrics, confusion matrix plot, MEGC log."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from microexpr.evaluation.metrics import megc_log
from microexpr.plain import plain_data


def plot_confusion(matrix: np.ndarray, classes: list[str], path: Path, title: str) -> None:
    """Save a confusion matrix (counts, rows = truth) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = np.asarray(matrix)
    size = max(3.5, 0.9 * len(classes) + 2)
    fig, ax = plt.subplots(figsize=(size, size * 0.9))
    rows = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, rows, out=np.zeros_like(matrix, dtype=float), where=rows > 0)
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center",
                    color="white" if share[i, j] > 0.6 else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=30, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_results(out: Path, config: dict, predictions: pd.DataFrame, metrics: dict,
                  problems: pd.DataFrame | None = None, history: pd.DataFrame | None = None
                  ) -> Path:
    """Write a results directory so that every number can be recomputed from its files;
    `history` (per fold and epoch: losses and loss terms) goes to history.csv."""
    out.mkdir(parents=True, exist_ok=True)
    if history is not None and len(history):
        history.to_csv(out / "history.csv", index=False)
    (out / "config.yaml").write_text(yaml.safe_dump(plain_data(config), sort_keys=False))
    predictions.to_csv(out / "predictions.csv", index=False)
    (out / "metrics.json").write_text(json.dumps(plain_data(metrics), indent=2) + "\n")
    (out / "megc_log.txt").write_text(megc_log(predictions))
    if problems is not None and len(problems):
        problems.to_csv(out / "problems.csv", index=False)
    title = (f"{config.get('model', {}).get('name', '')} {config.get('protocol', '')}  "
             f"UF1 {metrics['uf1']:.3f}  UAR {metrics['uar']:.3f}")
    plot_confusion(np.array(metrics["confusion"]), list(metrics["classes"]),
                   out / "confusion.png", title)
    return out


def load_results(out: str | Path) -> tuple[dict, pd.DataFrame, dict]:
    """Read back (config, predictions, metrics) from a results directory."""
    out = Path(out)
    config = yaml.safe_load((out / "config.yaml").read_text())
    path = out / "predictions.csv"
    text = {"y_true": str, "y_pred": str, "clip": str, "subject": str, "dataset": str}
    # names are read as written (a clip or class called "NA" or "null" stays that string);
    # only the other columns read empty cells and NaN as missing
    columns = pd.read_csv(path, nrows=0).columns
    predictions = pd.read_csv(path, dtype=text, keep_default_na=False,
                              na_values={c: [] if c in text else ["", "nan", "NaN"]
                                         for c in columns})
    metrics = json.loads((out / "metrics.json").read_text())
    return config, predictions, metrics
