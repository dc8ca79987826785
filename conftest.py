"""pytest settings shared by the unit tests and the notebooks (run through nbval).

Notebooks run at smoke scale unless SSL_TUTORIAL_SCALE says otherwise; the kernels nbval starts
inherit this environment. plotly renders to a small JSON output instead of embedding plotly.js.
"""

import os

os.environ.setdefault("SSL_TUTORIAL_SCALE", "smoke")
os.environ.setdefault("PLOTLY_RENDERER", "json")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TQDM_DISABLE", "1")

_notebook_seconds: dict[str, float] = {}


def pytest_runtest_logreport(report):
    """Add up the time of every executed notebook cell, per notebook."""
    path = report.nodeid.split("::")[0]
    if path.endswith(".ipynb"):
        _notebook_seconds[path] = _notebook_seconds.get(path, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter):
    if _notebook_seconds:
        scale = os.environ.get("SSL_TUTORIAL_SCALE")
        terminalreporter.section(f"notebook execution time (scale {scale}, kernel start not included)")
        for path, seconds in sorted(_notebook_seconds.items()):
            terminalreporter.write_line(f"{seconds:7.1f} s  {path}")
        terminalreporter.write_line(f"{sum(_notebook_seconds.values()):7.1f} s  in all")
