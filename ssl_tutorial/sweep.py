"""``ssl-tutorial sweep``: every Check of some notebooks, at many seeds, each seed with a fresh cache.

A Check must hold at any seed, not only at the seeds it was calibrated on. The sweep runs each notebook
headless at every seed, with an empty checkpoint cache per seed (shared by the notebooks of that seed,
as a reader's first run shares chapter 1's RotNet), collects every claim the notebooks record through
``checks.Checks``, prints per claim the min / median / max, the threshold, the worst margin and how many
seeds failed, and writes ``results/<scale>.json``. It exits with 1 when any claim fails at any seed (or a
notebook fails to run), so that it can gate a change.

The rule for every Check (README, "Contributing"): calibrate on seeds 0-9, then sweep 20 fresh seeds
at smoke (e.g. 100-119) and 5 at cpu (e.g. 100-104); every claim must hold at every one of them.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from . import results
from .checks import ENV


def parse_seeds(text: str) -> list[int]:
    """``"100-119"`` (inclusive) or ``"0,3,7"`` -> a list of non-negative seeds."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part:
                a, b = (int(x) for x in part.split("-"))
                if b < a:
                    raise ValueError
                seeds += range(a, b + 1)
            else:
                seeds.append(int(part))
    except ValueError:
        raise ValueError(f"--seeds {text!r} is not a seed range like 100-119 or a list like 0,3,7") from None
    if any(s < 0 for s in seeds) or not seeds:
        raise ValueError(f"--seeds {text!r}: seeds are non-negative integers")
    return sorted(set(seeds))


def _commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=results.ROOT, capture_output=True,
                             text=True, timeout=10)
        # results/ itself changes during a sweep (it is written after every seed): that is not a code change
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!results"],
                               cwd=results.ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return out.stdout.strip() + ("+changes" if dirty else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def merge(old: dict | None, new: dict) -> dict:
    """Add a sweep's seeds to a notebook's earlier entry if the claims are the same (names, thresholds,
    directions, asserted); otherwise the new sweep replaces it."""
    if not old:
        return new

    def rules(entry):
        return {n: (c["direction"], c["threshold"], c["asserted"]) for n, c in entry["claims"].items()}

    if rules(old) != rules(new) or old.get("threads") != new.get("threads"):
        return new
    merged = dict(new)
    merged["seeds"] = sorted(set(old["seeds"]) | set(new["seeds"]))
    rerun = {str(seed) for seed in new["seeds"]}
    merged["seconds"] = {**old.get("seconds", {}), **new.get("seconds", {})}
    # an old error at a seed that the new sweep ran again is history, not a failure
    merged["errors"] = {**{s: e for s, e in old.get("errors", {}).items() if s not in rerun}, **new.get("errors", {})}
    merged["claims"] = {n: {**c, "values": {**old["claims"][n]["values"], **c["values"]}}
                        for n, c in new["claims"].items()}
    merged["date"] = new["date"]
    return merged


def collect(stem: str, runs: dict[int, dict]) -> dict:
    """One notebook's entry of results/<scale>.json from its runs {seed: {"seconds", "error", "claims"}}."""
    claims: dict[str, dict] = {}
    for seed, run in sorted(runs.items()):
        for c in run["claims"]:
            entry = claims.setdefault(c["name"], {"direction": c["direction"], "threshold": c["threshold"],
                                                  "asserted": c["asserted"], "values": {}})
            entry["values"][str(seed)] = c["value"]
    return {"seeds": sorted(runs), "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "commit": _commit(), "threads": _threads(), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "seconds": {str(s): round(r["seconds"], 1) for s, r in runs.items()},
            "errors": {str(s): r["error"] for s, r in runs.items() if r["error"] and not r["check_failed"]},
            "claims": claims}


def print_summary(stem: str, entry: dict, file=None) -> int:
    """The per-claim table of one notebook; returns the number of failures (failed claims x seeds + errors)."""
    file = file or sys.stdout
    n = len(entry["seeds"])
    secs = list(entry["seconds"].values())
    print(f"\n{stem}: {n} seeds ({results._seed_range(entry['seeds'])}), "
          f"{min(secs):.0f}-{max(secs):.0f} s a run" if secs else f"\n{stem}", file=file)
    width = max([len(c) for c in entry["claims"]] + [5])
    print(f"  {'claim':<{width}}  {'min':>8} {'median':>8} {'max':>8}  {'rule':<12} {'worst margin':>12}  failed",
          file=file)
    bad = 0
    for name, c in entry["claims"].items():
        s = results.summarise(c)
        rule = "shown" if c["threshold"] is None else f"{c['direction']} {c['threshold']:g}"
        if c["threshold"] is not None and not c["asserted"]:
            rule += " (n/a)"
        fails = "" if s["worst_margin"] is None else f"{s['failed']}/{s['n']}"
        if c["asserted"]:
            bad += s["failed"]
        print(f"  {name:<{width}}  {s['min']:8.3g} {s['median']:8.3g} {s['max']:8.3g}  {rule:<12} "
              f"{'' if s['worst_margin'] is None else format(s['worst_margin'], '.3g'):>12}  {fails}", file=file)
    for seed, err in entry["errors"].items():
        print(f"  seed {seed} did not run to its Check: {err}", file=file)
    return bad + len(entry["errors"])


def _write(runs: dict[str, dict[int, dict]], scale: str, out: Path | None) -> Path:
    """Merge the runs so far into results/<scale>.json (re-read first: another sweep may have written)."""
    data = results.load(scale, out)
    for stem, by_seed in runs.items():
        if by_seed:
            data["notebooks"][stem] = merge(data["notebooks"].get(stem), collect(stem, by_seed))
    return results.save(data, out)


def sweep(paths: list[Path], scale: str, seeds: list[int], out: Path | None = None, timeout: int = 1800,
          keep_cache: bool = False, failed_dir: Path | None = None) -> int:
    """Run every notebook at every seed; print the per-claim summary; write results/<scale>.json.

    Returns 0 when every asserted claim held at every seed and every run reached its Check, else 1.
    Executed copies of failed runs are written to ``failed_dir`` (default build/sweep/).
    """
    import nbformat
    from tqdm.auto import tqdm

    from .cli import execute

    env_before = dict(os.environ)
    os.environ.update({"SSL_TUTORIAL_SCALE": scale, "TQDM_DISABLE": "1", "PLOTLY_RENDERER": "json",
                       "MPLBACKEND": "Agg"})
    work = Path(tempfile.mkdtemp(prefix="ssl-tutorial-sweep-"))
    failed_dir = failed_dir or results.ROOT / "build" / "sweep"
    runs: dict[str, dict[int, dict]] = {p.stem: {} for p in paths}
    bar = tqdm(total=len(paths) * len(seeds), desc=f"sweep at {scale}", unit="run", disable=False,
               file=sys.stderr, dynamic_ncols=True)
    try:
        for seed in seeds:
            cache = (failed_dir / f"cache-{scale}-{seed}") if keep_cache else work / f"cache-{seed}"
            if cache.exists():
                shutil.rmtree(cache)
            for path in paths:
                bar.set_postfix_str(f"{path.stem}, seed {seed}")
                claims_file = work / f"{path.stem}-{seed}.json"
                os.environ.update({"SSL_TUTORIAL_SEED": str(seed), "SSL_TUTORIAL_CACHE": str(cache),
                                   ENV: str(claims_file), "SSL_TUTORIAL_NOTEBOOK": path.stem})
                nb, seconds, error = execute(path, timeout)
                claims = json.loads(claims_file.read_text())["claims"] if claims_file.exists() else []
                check_failed = bool(error and error.startswith("AssertionError") and claims)
                runs[path.stem][seed] = {"seconds": seconds, "error": error, "claims": claims,
                                         "check_failed": check_failed}
                if error:
                    failed_dir.mkdir(parents=True, exist_ok=True)
                    nbformat.write(nb, failed_dir / f"{path.stem}-{scale}-seed{seed}.ipynb")
                    bar.write(f"{path.stem}, seed {seed}: {error[:300]}")
                bar.update(1)
            if not keep_cache:
                shutil.rmtree(cache, ignore_errors=True)
            written = _write(runs, scale, out)  # after every seed: a sweep stopped half-way keeps what it measured
    finally:
        bar.close()
        os.environ.clear()
        os.environ.update(env_before)
        shutil.rmtree(work, ignore_errors=True)
    bad = 0
    for stem, by_seed in runs.items():
        bad += print_summary(stem, collect(stem, by_seed))
    print(f"\nwrote {written}" + ("" if not bad else f"; {bad} failure(s): see above and build/sweep/"))
    return 1 if bad else 0
