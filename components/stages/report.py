"""Build the comparison grid from every cell's metrics file: reports/grid.csv and reports/grid.md."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from components import paths
from components.atomic import read_json, write_text
from components.config import Params
from components.grid import cells
from components.report import aggregate, render_markdown


def collect(params: Params) -> pd.DataFrame:
    return pd.DataFrame([read_json(paths.metrics_path(c)) for c in cells(params)])


def run(params: Params) -> list[Path]:
    table = aggregate(collect(params))
    out = paths.report_dir()
    csv, md = out / "grid.csv", out / "grid.md"
    write_text(table.to_csv(index=False), csv)
    write_text(render_markdown(table), md)
    return [csv, md]
