"""Measured numbers live in ``results/<scale>.json``, written by ``ssl-tutorial sweep``; nothing is typed.

* ``ssl-tutorial sweep`` runs notebooks over many seeds and stores every claim of their Check cells
  (see ``checks.py``) here, per notebook: the seeds, the value at each seed, threshold and direction.
* ``ssl-tutorial report`` turns the files into the README's table of Checks, between two markers.
  A unit test fails when the README's table differs from what ``report`` would write.
* Notebook cells that show numbers measured elsewhere (an exercise's cpu-scale table) read them with
  :func:`measured_table`, which prints the seeds, scale and date they came from.

Layout of ``results/<scale>.json``::

    {"scale": "cpu",
     "notebooks": {"01_rotnet": {"seeds": [100, ...], "date": "...", "commit": "...", "threads": 2,
                                 "seconds": {"100": 212.0, ...}, "errors": {},
                                 "claims": {"probe gain (pts)": {"direction": ">=", "threshold": 10.0,
                                                                  "asserted": true, "values": {"100": 14.8}}}}},
     "tables": {"07_obow/teacher_views": {"source": "...", "seeds": [0, 1, 2], "date": "...",
                                          "columns": [...], "index": [...], "data": [[...]]}}}
"""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path

from .checks import TOLERANCE

ROOT = Path(__file__).resolve().parents[1]
BEGIN = "<!-- checks-table: begin (written by `ssl-tutorial report` from results/*.json; do not edit) -->"
END = "<!-- checks-table: end -->"
SCALE_ORDER = ("smoke", "cpu", "gpu")


def results_dir() -> Path:
    return ROOT / "results"


def load(scale: str, folder: Path | None = None) -> dict:
    path = (folder or results_dir()) / f"{scale}.json"
    if not path.exists():
        return {"scale": scale, "notebooks": {}, "tables": {}}
    data = json.loads(path.read_text())
    data.setdefault("notebooks", {})
    data.setdefault("tables", {})
    return data


def save(data: dict, folder: Path | None = None) -> Path:
    folder = folder or results_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{data['scale']}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")
    tmp.replace(path)
    return path


# -- a notebook's exercise tables -------------------------------------------------------------------------
def measured_table(name: str, scale: str = "cpu", folder: Path | None = None, quiet: bool = False):
    """A measured table stored in ``results/<scale>.json`` under ``tables``, as a DataFrame.

    Prints where it came from (the scale, seeds, date and how it was measured) unless ``quiet``.
    """
    import pandas as pd

    tables = load(scale, folder)["tables"]
    if name not in tables:
        raise KeyError(f"no table {name!r} in results/{scale}.json; it has: {', '.join(sorted(tables)) or 'none'}")
    t = tables[name]
    if not quiet:
        seeds = ", ".join(map(str, t.get("seeds", []))) or "?"
        print(f"measured at {scale} scale, seeds {seeds}, on {t.get('date', '?')}: {t.get('source', '')}")
    return pd.DataFrame(t["data"], index=t["index"], columns=t["columns"])


# -- claims over seeds ------------------------------------------------------------------------------------
def summarise(claim: dict) -> dict:
    """min / median / max of a claim's values over its seeds, its worst margin and how many seeds failed."""
    values = [v for v in claim["values"].values() if v is not None]
    out = {"n": len(values), "min": min(values) if values else None, "max": max(values) if values else None,
           "median": statistics.median(values) if values else None, "worst_margin": None, "failed": 0}
    if claim.get("threshold") is not None and values:
        t, d = claim["threshold"], claim["direction"]
        margins = [v - t if d.startswith(">") else t - v for v in values]
        slack = TOLERANCE * max(1.0, abs(t))
        out["worst_margin"] = min(margins)
        out["failed"] = sum(1 for m in margins if (m <= slack if d in (">", "<") else m < -slack))
    return out


def _num(x) -> str:
    """Three significant digits (``26.3``, ``-1.7``, ``0.031``); ``—`` for nothing."""
    if x is None:
        return "—"
    return f"{x:.3g}" if abs(x) < 1000 else f"{x:.0f}"


def _cell(claim: dict | None) -> tuple[str, str, str]:
    """(rule, measured, worst margin / fails) for one scale."""
    if claim is None:
        return "—", "—", "—"
    s = summarise(claim)
    if claim.get("threshold") is None:
        rule = "shown"
    else:
        rule = f"{claim['direction']} {_num(claim['threshold'])}" if claim["asserted"] else \
            f"not asserted ({claim['direction']} {_num(claim['threshold'])})"
    measured = f"{_num(s['min'])} / {_num(s['median'])} / {_num(s['max'])}"
    if s["worst_margin"] is None:
        verdict = f"{s['n']} seeds"
    else:
        fails = s["failed"] if claim["asserted"] else f"({s['failed']})"
        verdict = f"{_num(s['worst_margin'])}; {fails} of {s['n']} fail"
    return rule, measured, verdict


def render(folder: Path | None = None, scales=("smoke", "cpu")) -> str:
    """The README's table of Checks, from ``results/<scale>.json``."""
    data = {s: load(s, folder) for s in scales}
    names: list[str] = []
    for s in scales:
        for nb in data[s]["notebooks"]:
            if nb not in names:
                names.append(nb)
    from .cli import all_notebooks

    order = [p.stem for p in all_notebooks()]
    names.sort(key=lambda stem: (order.index(stem) if stem in order else len(order), stem))
    head = ["notebook", "claim"]
    for s in scales:
        head += [f"{s}: rule", f"{s}: min / median / max", f"{s}: worst margin; fails"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for nb in names:
        claim_names: list[str] = []
        for s in scales:
            for c in data[s]["notebooks"].get(nb, {}).get("claims", {}):
                if c not in claim_names:
                    claim_names.append(c)
        for c in claim_names:
            row = [nb, c]
            for s in scales:
                entry = data[s]["notebooks"].get(nb)
                row += _cell(entry["claims"].get(c) if entry else None)
            lines.append("| " + " | ".join(row) + " |")
    seeds = []
    for s in scales:
        runs = data[s]["notebooks"]
        if runs:
            sets = sorted({_seed_range(e["seeds"]) for e in runs.values()})
            dates = sorted({e.get("date", "?")[:10] for e in runs.values()})
            seeds.append(f"{s}: seeds {', '.join(sets)} ({', '.join(dates)})")
    note = ("Swept " + "; ".join(seeds) + ". Values are in each claim's own unit (pts: percentage points). "
            "The worst margin is how far the worst seed is on the passing side of the threshold; "
            "a claim in parentheses is recorded but not asserted at that scale.") if seeds else "Nothing swept yet."
    notes = [f"- {s}, {nb}: {data[s]['notebooks'][nb]['note']}" for s in scales for nb in names
             if data[s]["notebooks"].get(nb, {}).get("note")]
    times = _times(data, names, scales)
    return "\n".join([BEGIN, "", note, "", *lines, "", *notes, *([""] if notes else []), *times, END])


def _times(data: dict, names: list[str], scales) -> list[str]:
    """How long one run of each notebook took in its sweep (the whole notebook, kernel start included)."""
    if not any(data[s]["notebooks"] for s in scales):
        return []
    lines = ["Seconds per run in the sweeps above (min-max over the seeds; the whole notebook with its kernel start "
             "and a fresh checkpoint cache; the thread count of the run; sweeps often shared the 2 cores with "
             "a second one, so these are upper bounds):", "",
             "| notebook | " + " | ".join(f"{s}: seconds (threads)" for s in scales) + " |",
             "|" + "---|" * (1 + len(scales))]
    for nb in names:
        row = [nb]
        for s in scales:
            entry = data[s]["notebooks"].get(nb)
            seconds = list(entry.get("seconds", {}).values()) if entry else []
            row.append(f"{min(seconds):.0f}-{max(seconds):.0f} ({entry.get('threads', '?')})" if seconds else "—")
        lines.append("| " + " | ".join(row) + " |")
    return [*lines, ""]


def _seed_range(seeds: list[int]) -> str:
    seeds = sorted(seeds)
    if seeds and seeds == list(range(seeds[0], seeds[-1] + 1)) and len(seeds) > 2:
        return f"{seeds[0]}-{seeds[-1]}"
    return ",".join(map(str, seeds))


TABLE_BEGIN = re.compile(r"<!-- results-table (\w+)/(\S+): begin \(written by `ssl-tutorial report`; do not edit\) -->")
TABLE_END = "<!-- results-table: end -->"


def render_table(scale: str, name: str, folder: Path | None = None) -> str:
    """A measured table of ``results/<scale>.json`` as markdown, with where it came from."""
    t = load(scale, folder)["tables"].get(name)
    if t is None:
        raise KeyError(f"the README shows table {name!r}, which results/{scale}.json does not have")
    lines = [f"*{t.get('source', '')}; {scale} scale, seeds {' / '.join(map(str, t.get('seeds', [])))}, "
             f"{t.get('date', '?')}.*", "",
             "| " + " | ".join([t.get("index_name", ""), *t["columns"]]) + " |", "|" + "---|" * (1 + len(t["columns"]))]
    lines += ["| " + " | ".join([str(i), *map(str, row)]) + " |" for i, row in zip(t["index"], t["data"])]
    return "\n".join(lines)


def _tables(text: str, folder: Path | None) -> str:
    """Every ``results-table`` block of the README rewritten from the results files."""
    out, pos = [], 0
    for m in TABLE_BEGIN.finditer(text):
        stop = text.index(TABLE_END, m.end())
        out += [text[pos:m.end()], "\n", render_table(m.group(1), m.group(2), folder), "\n"]
        pos = stop
    return "".join(out) + text[pos:]


def update_readme(readme: Path | None = None, folder: Path | None = None) -> bool:
    """Write the table of Checks between its markers, and every measured table between its own; True if the
    file changed."""
    readme = readme or ROOT / "README.md"
    text = readme.read_text()
    if BEGIN not in text or END not in text:
        raise ValueError(f"{readme} has no checks-table markers; add the two lines\n{BEGIN}\n{END}")
    new = _rendered(text, folder)
    if new != text:
        readme.write_text(new)
    return new != text


def readme_table(readme: Path | None = None) -> str:
    text = (readme or ROOT / "README.md").read_text()
    return text[text.index(BEGIN):text.index(END) + len(END)]


def readme_is_current(readme: Path | None = None, folder: Path | None = None) -> bool:
    """Whether ``report`` would leave the README as it is (the table of Checks and every measured table)."""
    text = (readme or ROOT / "README.md").read_text()
    return _rendered(text, folder) == text


def _rendered(text: str, folder: Path | None) -> str:
    """The README ``text`` with the table of Checks and every measured table written from the results files."""
    start, stop = text.index(BEGIN), text.index(END) + len(END)
    return _tables(text[:start] + render(folder) + text[stop:], folder)
