"""The Check helper, the results files, the README table they generate, and the sweep."""

import json

import nbformat
import pytest

from ssl_tutorial import cli, results, setup, sweep
from ssl_tutorial.checks import ENV, Checks


def test_every_failing_claim_is_named(capsys):
    check = Checks(setup("smoke", seed=3, verbose=False))
    check.at_least("gain (pts)", 4.0, 3)
    check.at_least("second gain", 1.0, 3)
    check.below("accuracy", 31.0, 30)
    check.at_most("not asserted", 99.0, 1, asserted=False)
    check.show("context", 0.1)
    message = check.verify()
    assert "2 of 3 claims fail" in message and "second gain" in message and "accuracy" in message
    assert "gain (pts): " not in message and "not asserted" not in message and "seed 3" in message
    table = capsys.readouterr().out
    assert "FAILS" in table and "holds" in table and "shown" in table and "not asserted here" in table


def test_margins_and_directions():
    check = Checks()
    assert check.at_least("a", 5, 3).margin == 2 and check.at_most("b", 5, 3).margin == -2
    assert check.at_least("c", 3, 3).holds and not check.above("d", 3, 3).holds
    assert check.at_most("e", 3, 3).holds and not check.below("f", 3, 3).holds
    assert not check.at_least("g", float("nan"), 0).holds
    with pytest.raises(ValueError, match="twice"):
        check.at_least("a", 1, 0)
    with pytest.raises(ValueError, match="direction"):
        check.claim("h", 1, "=>", 0)
    with pytest.raises(TypeError, match="numbers"):
        check.at_least("i", "high", 0)
    with pytest.raises(ValueError, match="no claims"):
        Checks().verify()


def test_claims_are_written_when_asked(tmp_path, monkeypatch):
    out = tmp_path / "claims.json"
    monkeypatch.setenv(ENV, str(out))
    first = Checks(setup("smoke", seed=5, verbose=False), notebook="nb")
    first.at_least("x", 1, 0)
    assert first.verify() == ""
    second = Checks(setup("smoke", seed=5, verbose=False), notebook="nb")  # a second Check cell appends
    second.below("y", 2, 1)
    assert second.verify().startswith("1 of 1 claims fail")
    record = json.loads(out.read_text())
    assert record["seed"] == 5 and record["scale"] == "smoke" and record["notebook"] == "nb"
    assert [(c["name"], c["holds"]) for c in record["claims"]] == [("x", True), ("y", False)]


def test_parse_seeds():
    assert sweep.parse_seeds("100-103") == [100, 101, 102, 103]
    assert sweep.parse_seeds("3,1,2-3") == [1, 2, 3]
    for bad in ("a-b", "5-1", "", "-3"):
        with pytest.raises(ValueError, match="--seeds"):
            sweep.parse_seeds(bad)


def _claim(values, threshold=3.0, direction=">=", asserted=True):
    return {"direction": direction, "threshold": threshold, "asserted": asserted,
            "values": {str(s): v for s, v in values.items()}}


def test_summarise_counts_failing_seeds():
    s = results.summarise(_claim({1: 5.0, 2: 2.0, 3: 3.0}))
    assert (s["min"], s["median"], s["max"], s["worst_margin"], s["failed"], s["n"]) == (2.0, 3.0, 5.0, -1.0, 1, 3)
    s = results.summarise(_claim({1: 0.2, 2: 0.1}, threshold=0.3, direction="<"))
    assert s["worst_margin"] == pytest.approx(0.1) and s["failed"] == 0
    assert results.summarise(_claim({1: 1.0}, threshold=None, direction=""))["worst_margin"] is None


def test_merge_adds_seeds_only_when_the_claims_are_the_same():
    old = {"seeds": [1], "threads": 2, "seconds": {"1": 3}, "errors": {}, "claims": {"a": _claim({1: 4.0})}}
    new = {"seeds": [2], "threads": 2, "seconds": {"2": 3}, "errors": {}, "claims": {"a": _claim({2: 5.0})},
           "date": "d"}
    merged = sweep.merge(old, new)
    assert merged["seeds"] == [1, 2] and merged["claims"]["a"]["values"] == {"1": 4.0, "2": 5.0}
    moved = dict(new, claims={"a": _claim({2: 5.0}, threshold=2.0)})  # a moved threshold: the old seeds go
    assert sweep.merge(old, moved)["seeds"] == [2]


def test_merge_forgets_an_old_error_at_a_seed_that_ran_again():
    old = {"seeds": [1, 2], "threads": 2, "seconds": {"1": 3, "2": 1}, "errors": {"1": "old", "2": "kernel died"},
           "claims": {"a": _claim({1: 4.0})}}
    new = {"seeds": [2, 3], "threads": 2, "seconds": {"2": 3, "3": 3}, "errors": {"3": "new"},
           "claims": {"a": _claim({2: 5.0})}, "date": "d"}
    merged = sweep.merge(old, new)
    assert merged["errors"] == {"1": "old", "3": "new"} and merged["seconds"] == {"1": 3, "2": 3, "3": 3}


def test_render_and_update_readme(tmp_path):
    folder = tmp_path / "results"
    results.save({"scale": "smoke", "notebooks": {"01_rotnet": {
        "seeds": [100, 101, 102], "date": "2026-12-01 10:00 UTC", "threads": 2, "seconds": {}, "errors": {},
        "claims": {"gain (pts)": _claim({100: 4.0, 101: 6.5, 102: 3.5}),
                   "kNN gain (pts)": _claim({100: -1.0, 101: 0.5, 102: 2.0}, threshold=5.0, asserted=False)}}},
        "tables": {}}, folder)
    table = results.render(folder)
    assert "| 01_rotnet | gain (pts) | >= 3 | 3.5 / 4 / 6.5 | 0.5; 0 of 3 fail |" in table
    assert "not asserted (>= 5)" in table and "(3) of 3 fail" in table and "seeds 100-102" in table
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{results.BEGIN}\nSTALE\n{results.END}\nafter\n")
    assert results.update_readme(readme, folder) is True
    assert results.update_readme(readme, folder) is False  # a second run leaves it unchanged
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("after\n") and "STALE" not in text


def test_the_readme_table_is_what_report_writes():
    assert results.readme_table() == results.render(), "run `ssl-tutorial report` and commit README.md"
    assert results.readme_is_current(), "a measured table in the README is stale: run `ssl-tutorial report`"


def test_measured_tables_in_the_readme(tmp_path):
    folder = tmp_path / "results"
    results.save({"scale": "cpu", "notebooks": {}, "tables": {"bench/x": {
        "source": "a benchmark", "seeds": [0, 1], "date": "2026-12-01", "index_name": "method",
        "columns": ["probe"], "index": ["a", "b"], "data": [["1 / 2"], ["3 / 4"]]}}}, folder)
    marker = "<!-- results-table cpu/bench/x: begin (written by `ssl-tutorial report`; do not edit) -->"
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{results.BEGIN}\n{results.END}\n{marker}\nSTALE\n{results.TABLE_END}\nafter\n")
    assert results.update_readme(readme, folder) is True and results.update_readme(readme, folder) is False
    text = readme.read_text()
    assert "STALE" not in text and "| method | probe |" in text and "| b | 3 / 4 |" in text and "seeds 0 / 1" in text
    assert text.endswith(f"{results.TABLE_END}\nafter\n")
    readme.write_text(f"{results.BEGIN}\n{results.END}\n{marker.replace('bench/x', 'bench/y')}\n{results.TABLE_END}\n")
    with pytest.raises(KeyError, match="bench/y"):
        results.update_readme(readme, folder)


def test_measured_tables_say_where_they_come_from(tmp_path, capsys):
    folder = tmp_path / "results"
    results.save({"scale": "cpu", "notebooks": {}, "tables": {"nb/t": {
        "source": "benchmarks/x.py", "seeds": [0, 1], "date": "2026-11-30", "columns": ["shape"],
        "index": ["random init"], "data": [["29.4 / 28.0"]]}}}, folder)
    df = results.measured_table("nb/t", folder=folder)
    assert df.loc["random init", "shape"] == "29.4 / 28.0"
    assert "seeds 0, 1" in capsys.readouterr().out
    with pytest.raises(KeyError, match="no table 'nope'"):
        results.measured_table("nope", folder=folder)


def test_every_stored_table_can_be_read():
    for scale in results.SCALE_ORDER:
        for name in results.load(scale)["tables"]:
            assert len(results.measured_table(name, scale, quiet=True)) > 0


def test_sweep_runs_notebooks_per_seed_and_fails_on_any_seed(tmp_path, capsys):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "import os\nfrom ssl_tutorial import setup\nfrom ssl_tutorial.checks import Checks\n"
        "cfg = setup()\ncheck = Checks(cfg)\n"
        "check.at_least('seed is at least 1', cfg.seed, 1)\n"
        "check.show('fresh cache per seed', len(os.listdir(os.environ['SSL_TUTORIAL_CACHE']))"
        " if os.path.isdir(os.environ['SSL_TUTORIAL_CACHE']) else 0)\n"
        "os.makedirs(os.environ['SSL_TUTORIAL_CACHE'], exist_ok=True)\n"
        "open(os.path.join(os.environ['SSL_TUTORIAL_CACHE'], f'seed{cfg.seed}'), 'w').close()\n"
        "failures = check.verify()\nassert not failures, failures")]
    path = tmp_path / "99_toy.ipynb"
    nbformat.write(nb, path)
    code = sweep.sweep([path], "smoke", [0, 1], out=tmp_path / "results", timeout=120, failed_dir=tmp_path / "failed")
    out = capsys.readouterr().out
    assert code == 1 and "99_toy: 2 seeds" in out and "1/2" in out
    entry = results.load("smoke", tmp_path / "results")["notebooks"]["99_toy"]
    assert entry["seeds"] == [0, 1] and entry["errors"] == {}
    assert entry["claims"]["seed is at least 1"]["values"] == {"0": 0.0, "1": 1.0}
    assert entry["claims"]["fresh cache per seed"]["values"] == {"0": 0.0, "1": 0.0}
    assert (tmp_path / "failed" / "99_toy-smoke-seed0.ipynb").exists()


@pytest.mark.parametrize("env, argv, words", [
    ({"SSL_TUTORIAL_SCALE": "huge"}, ["run", "01_rotnet"], "scale 'huge' is not valid"),
    ({"SSL_TUTORIAL_SEED": "x"}, ["run", "01_rotnet"], "seed must be an integer"),
    ({"SSL_TUTORIAL_DATASET": "imagenet"}, ["run", "01_rotnet"], "dataset 'imagenet' is not valid"),
    ({"SSL_TUTORIAL_DEVICE": "tpu"}, ["run", "01_rotnet"], "device 'tpu' is not valid"),
    ({"SSL_TUTORIAL_SCALE": "huge"}, ["sweep", "01_rotnet", "--seeds", "1-2"], "scale 'huge' is not valid"),
    ({}, ["sweep", "01_rotnet", "--seeds", "x"], "--seeds 'x'"),
    ({}, ["sweep", "99_nothing", "--seeds", "1"], "no notebook '99_nothing'"),
])
def test_the_cli_checks_its_switches_before_it_starts_a_kernel(env, argv, words, monkeypatch, capsys):
    import nbclient

    for k, v in env.items():
        monkeypatch.setenv(k, v)

    def no_kernel(*a, **k):
        raise AssertionError("a kernel was started")

    monkeypatch.setattr(nbclient.NotebookClient, "execute", no_kernel)
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1


def test_floating_point_rounding_never_decides_a_claim():
    check = Checks()
    assert check.at_least("gain", 100 * (0.54 - 0.50), 4).holds  # 3.9999999999999996
    assert not check.above("strict", 100 * (0.54 - 0.50), 4).holds
    assert not check.at_least("clearly below", 3.99, 4).holds
    assert results.summarise(_claim({1: 100 * (0.54 - 0.50)}, threshold=4.0))["failed"] == 0
