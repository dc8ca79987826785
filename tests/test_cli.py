import subprocess
import sys
import urllib.error

import pytest

from ssl_tutorial import cli


def test_list_shows_every_notebook(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    for nb in cli.all_notebooks():
        assert nb.stem in out and cli.title(nb) in out
    assert len(cli.all_notebooks()) >= 3


def test_find_notebook():
    assert cli.find_notebook("01_rotnet").name == "01_rotnet.ipynb"
    assert cli.find_notebook("01_foundations/02_sla").name == "02_sla.ipynb"
    with pytest.raises(LookupError, match="ssl-tutorial list"):
        cli.find_notebook("99_nothing")


@pytest.mark.parametrize("argv, words", [
    (["run", "99_nothing", "--scale", "smoke"], "no notebook '99_nothing'"),
    (["run", "01_rotnet", "--scale", "huge"], "invalid choice: 'huge'"),
    (["fetch", "imagenet"], "invalid choice: 'imagenet'"),
    (["dance"], "invalid choice: 'dance'"),
])
def test_bad_input_is_one_line_and_exit_2(argv, words, capsys):
    with pytest.raises(SystemExit) as e:
        code = cli.main(argv)
        raise SystemExit(code)
    err = capsys.readouterr().err
    assert e.value.code == 2 and words in err and len(err.strip().splitlines()) == 1


def test_fetch_offline_is_one_line(monkeypatch, capsys):
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torchvision.datasets, "STL10", offline)
    assert cli.main(["fetch", "stl10"]) == 1
    err = capsys.readouterr().err
    assert "could not download stl10" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_the_installed_command_prints_no_traceback():
    r = subprocess.run([sys.executable, "-m", "ssl_tutorial.cli", "run", "nope"], capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr and r.stderr.startswith("ssl-tutorial: no notebook")
