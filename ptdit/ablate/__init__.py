"""`ptdit ablate`: a grid of training runs (variants x seeds), each scored by the same evaluation.

grid.py reads and checks the grid config, run.py trains and scores one run (in a worker process), report.py
turns the per-run JSONs into a table (mean ± std over seeds), ordering verdicts and curves, cli.py is the
command. docs/ablations.md describes the config and the studies.
"""

from .grid import Grid, RunSpec, load_grid
from .report import verdict

__all__ = ["Grid", "RunSpec", "load_grid", "verdict"]
