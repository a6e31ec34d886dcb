"""The `simam` console commands."""

import json
import subprocess
import sys

import pytest

from simam_ref.cli import main


def test_verify_json_reports_errata_and_agreement(capsys):
    assert main(["verify", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True
    claims = {(c["source"], c["name"]): c for c in report["claims"]}
    failing = [c for c in report["claims"] if not c["verdict"]]
    assert failing, "the eq 3 sign erratum and the seed typos must be reported"
    eq3 = [c for c in failing if "3" in c["name"] and c["counterexample"]]
    assert eq3, claims.keys()
    assert all(c["counterexample"] for c in failing)
    assert all(c["passed"] for c in report["confirmations"])
    assert [g["M"] for g in report["paper_exact_gap"]] == sorted(
        g["M"] for g in report["paper_exact_gap"])


def test_verify_table(capsys):
    assert main(["verify"]) == 0
    out = capsys.readouterr().out
    assert "FAILS" in out and "holds" in out
    assert "scipy.minimize" in out and "verify: OK" in out


@pytest.mark.parametrize(
    ("claim", "labels", "code"),
    [
        ("w_t = 2*(t-mu)/((t-mu)**2 + 2*sigma**2 + 2*lam)", None, 0),
        ("w_t = -2*(t-mu)/((t-mu)**2 + 2*sigma**2 + 2*lam)", None, 1),
        ("b_t = -(t+mu)*(t-mu)/((t-mu)**2 + 2*sigma**2 + 2*lam)", None, 0),
        ("e_t = 4*(mu**2 + lam)/((t-mu)**2 + 2*sigma**2 + 2*lam)", None, 1),
        ("inv_e_t = (t-mu)**2/(4*(sigma**2+lam)) + 1/2", None, 0),
        ("w_t = (t-mu)/((t-mu)**2 + 2*sigma**2 + 2*lam)", "1,0", 0),
        ("w_t = 2*(t-mu)/((t-mu)**2 + 2*sigma**2 + 2*lam)", "1,0", 1),
    ],
)
def test_check_exit_codes(claim, labels, code, capsys):
    argv = ["check", "--json", claim] + (["--labels", labels] if labels else [])
    assert main(argv) == code
    result = json.loads(capsys.readouterr().out)
    assert result["holds"] is (code == 0)
    assert isinstance(result["derived"], str)
    assert (result["counterexample"] is None) == (code == 0)


@pytest.mark.parametrize("claim", ["w_t = __import__('os').system('echo pwned')",
                                   "w_t = foo + t", "z_t = t", "w_t = t +", "w_t"])
def test_check_bad_input_exits_2(claim, capsys):
    assert main(["check", claim]) == 2
    assert "pwned" not in capsys.readouterr().out


def test_console_script_runs_check():
    proc = subprocess.run(
        [sys.executable, "-m", "simam_ref.cli", "check", "b_t = -(t+mu)*w_t"],
        capture_output=True, text=True, timeout=120,
    )
    # w_t is not an allowed symbol on the right-hand side
    assert proc.returncode == 2, proc.stderr
