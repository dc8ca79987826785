"""pytest settings shared by the unit tests and the notebooks (run through nbval).

Notebooks run at smoke scale unless SSL_TUTORIAL_SCALE says otherwise; the kernels nbval starts
inherit this environment. plotly renders to a small JSON output instead of embedding plotly.js.
"""

import os

os.environ.setdefault("SSL_TUTORIAL_SCALE", "smoke")
os.environ.setdefault("PLOTLY_RENDERER", "json")
os.environ.setdefault("MPLBACKEND", "Agg")
