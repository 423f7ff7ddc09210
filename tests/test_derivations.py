"""Every derivation script runs, prints its derivation and passes its own checks (exit code 0)."""
import pytest

from slt.cli import main as cli_main
from slt.cli.derive import available, run

NAMES = sorted(available())


def test_derivations_present():
    assert {"quadratic_generic", "quadratic_vs_paper", "basins", "rrr", "crossings_newton",
            "volume_quadratic"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_derivation_runs_and_checks_pass(name, capsys):
    assert run(name) == 0
    out = capsys.readouterr().out
    assert "all checks passed" in out or "instances agree" in out
    assert "FAILED" not in out and "DISAGREES" not in out


def test_cli_list_and_bad_name(capsys):
    assert cli_main(["derive", "--list"]) == 0
    assert "quadratic_generic" in capsys.readouterr().out
    assert cli_main(["derive", "no_such_derivation"]) == 2


def test_latex_output(capsys):
    assert run("quadratic_vs_paper", latex=True) == 0
    assert "\\frac" in capsys.readouterr().out
