"""``ssl-tutorial``: list the notebooks, run one headless, sweep Checks over seeds, report, fetch a dataset.

    ssl-tutorial list
    ssl-tutorial run 01_rotnet --scale smoke --seed 3    # -> build/01_rotnet.ipynb and .html
    ssl-tutorial sweep 01_rotnet 02_sla --scale smoke --seeds 100-119   # -> results/smoke.json
    ssl-tutorial report                                  # README's table of Checks from results/*.json
    ssl-tutorial fetch cifar10

Errors are one line on stderr with exit code 2 (bad input) or 1 (the notebook or download failed).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

from .data.torchvision import SOURCES
from .runtime import SCALES

ROOT = Path(__file__).resolve().parents[1]


def notebooks_dir() -> Path:
    return ROOT / "notebooks" if (ROOT / "notebooks").is_dir() else Path.cwd() / "notebooks"


def all_notebooks() -> list[Path]:
    return sorted(p for p in notebooks_dir().glob("*/*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def title(path: Path) -> str:
    """The first heading of the notebook's first markdown cell."""
    try:
        cells = json.loads(path.read_text())["cells"]
    except (OSError, ValueError, KeyError):
        return "(unreadable notebook)"
    for cell in cells:
        if cell.get("cell_type") == "markdown":
            for line in "".join(cell["source"]).splitlines():
                if line.strip():
                    return line.lstrip("# ").strip()
    return ""


def find_notebook(name: str) -> Path:
    """A path, or a name such as ``01_rotnet`` or ``01_foundations/01_rotnet``."""
    p = Path(name)
    if p.suffix == ".ipynb" and p.exists():
        return p
    stem = name.removesuffix(".ipynb")
    matches = [nb for nb in all_notebooks()
               if nb.stem == stem or f"{nb.parent.name}/{nb.stem}" == stem or str(nb.relative_to(ROOT)) == name]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise LookupError(f"{name!r} matches several notebooks ({', '.join(m.parent.name + '/' + m.stem for m in matches)});"
                          " give the chapter too, e.g. 01_foundations/01_rotnet")
    raise LookupError(f"no notebook {name!r}; `ssl-tutorial list` shows them all")


def cmd_list(args) -> int:
    chapter = None
    for nb in all_notebooks():
        if nb.parent.name != chapter:
            chapter = nb.parent.name
            print(f"{chapter}/")
        print(f"  {nb.stem:<22} {title(nb)}")
    return 0


def execute(path: Path, timeout: int = 1800):
    """Execute a notebook in a fresh kernel (which inherits ``os.environ``): (notebook, seconds, error or None)."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}},
                            extra_arguments=["--IPKernelApp.log_level=ERROR"])  # no start-up warnings per run
    start = time.perf_counter()
    error = None
    try:
        client.execute()
    except CellExecutionError as e:
        error = f"{getattr(e, 'ename', 'Error')}: {getattr(e, 'evalue', str(e).splitlines()[-1] if str(e) else '')}"
    except Exception as e:  # timeouts, a dead kernel
        error = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    return nb, time.perf_counter() - start, error


def check_switches(scale: str | None, seed) -> str | None:
    """The error line for an invalid scale, seed, dataset or device (from the arguments or the environment)."""
    from .runtime import resolve

    try:
        resolve(scale, seed)
    except ValueError as e:
        return str(e)
    return None


def cmd_run(args) -> int:
    import nbformat

    try:
        path = find_notebook(args.notebook)
    except LookupError as e:
        print(f"ssl-tutorial: {e}", file=sys.stderr)
        return 2
    problem = check_switches(args.scale, args.seed)
    if problem:
        print(f"ssl-tutorial: {problem}", file=sys.stderr)
        return 2
    os.environ["SSL_TUTORIAL_SCALE"] = args.scale
    if args.seed is not None:
        os.environ["SSL_TUTORIAL_SEED"] = str(args.seed)
    os.environ.setdefault("PLOTLY_RENDERER", "notebook_connected")
    os.environ.setdefault("TQDM_DISABLE", "1")  # no reader watches a headless run
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    nb, seconds, error = execute(path, args.timeout)
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the kernel is our child
    nbformat.write(nb, out_dir / path.name)
    try:
        from nbconvert import HTMLExporter

        (out_dir / path.with_suffix(".html").name).write_text(HTMLExporter().from_notebook_node(nb)[0])
    except Exception as e:  # the HTML copy is a convenience; never hide the run's result behind it
        print(f"ssl-tutorial: could not write the HTML copy ({type(e).__name__}: {e})", file=sys.stderr)
    where = f"{out_dir / path.name}"
    if error:
        print(f"ssl-tutorial: {path.stem} failed after {seconds:.1f} s at scale {args.scale}: {error} (see {where})",
              file=sys.stderr)
        return 1
    print(f"{path.stem}: ran at scale {args.scale} in {seconds:.1f} s, peak memory {peak_mib:.0f} MiB -> {where}")
    return 0


def cmd_sweep(args) -> int:
    from .sweep import parse_seeds, sweep

    try:
        paths = [find_notebook(n) for n in args.notebooks]
        seeds = parse_seeds(args.seeds)
    except (LookupError, ValueError) as e:
        print(f"ssl-tutorial: {e}", file=sys.stderr)
        return 2
    problem = check_switches(args.scale, seeds[0])
    if problem:
        print(f"ssl-tutorial: {problem}", file=sys.stderr)
        return 2
    return sweep(paths, args.scale, seeds, out=Path(args.out) if args.out else None, timeout=args.timeout,
                 keep_cache=args.keep_cache)


def cmd_report(args) -> int:
    from .results import readme_is_current, update_readme

    if args.check:
        if not readme_is_current():
            print("ssl-tutorial: the README's tables are stale; run `ssl-tutorial report`", file=sys.stderr)
            return 1
        print("the README's table of Checks and measured tables match results/*.json")
        return 0
    changed = update_readme()
    print("README.md: tables " + ("rewritten from results/*.json" if changed else "already up to date"))
    return 0


def cmd_fetch(args) -> int:
    from .data.torchvision import fetch

    try:
        folder = fetch(args.dataset)
    except RuntimeError as e:
        print(f"ssl-tutorial: {e}", file=sys.stderr)
        return 1
    print(f"{args.dataset} is in {folder}; use it with SSL_TUTORIAL_DATASET={args.dataset}")
    return 0


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit code 2, no usage dump
        print(f"ssl-tutorial: {message} (see `ssl-tutorial --help`)", file=sys.stderr)
        raise SystemExit(2)


def main(argv=None) -> int:
    parser = _Parser(prog="ssl-tutorial", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sub.add_parser("list", help="the notebooks, one line each").set_defaults(fn=cmd_list)
    run = sub.add_parser("run", help="execute a notebook headless; writes build/NAME.ipynb and .html")
    run.add_argument("notebook")
    run.add_argument("--scale", choices=SCALES, default=os.environ.get("SSL_TUTORIAL_SCALE") or "cpu")
    run.add_argument("--seed", type=int, default=None)
    run.add_argument("--out", default="build")
    run.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    run.set_defaults(fn=cmd_run)
    sw = sub.add_parser("sweep", help="run notebooks over many seeds, one fresh cache each; writes results/SCALE.json")
    sw.add_argument("notebooks", nargs="+")
    sw.add_argument("--scale", choices=SCALES, default=os.environ.get("SSL_TUTORIAL_SCALE") or "smoke")
    sw.add_argument("--seeds", required=True, help="A-B (inclusive) or a comma-separated list, e.g. 100-119")
    sw.add_argument("--out", default=None, help="folder of the results files (default: results/)")
    sw.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    sw.add_argument("--keep-cache", action="store_true", help="keep each seed's checkpoint cache (in build/sweep/)")
    sw.set_defaults(fn=cmd_sweep)
    rep = sub.add_parser("report", help="write the README's table of Checks from results/*.json")
    rep.add_argument("--check", action="store_true", help="only say whether the README's table is up to date")
    rep.set_defaults(fn=cmd_report)
    fetch = sub.add_parser("fetch", help="download a real dataset into data/ (needs internet)")
    fetch.add_argument("dataset", choices=sorted(SOURCES))
    fetch.set_defaults(fn=cmd_fetch)
    args = parser.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
