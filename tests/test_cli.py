"""The ``backpain`` command line: help for every sub-command, one-line errors with exit code 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pipeline.cli import build_parser, main


def run_cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args], capture_output=True, text=True, cwd=cwd
    )


def test_top_level_help_lists_every_stage():
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("simulate", "ingest", "analyse", "summarise"):
        assert command in result.stdout


@pytest.mark.parametrize(
    "command", ["simulate", "ingest", "analyse", "meta", "summarise", "notebooks"]
)
def test_each_sub_command_documents_every_option(command):
    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices[command]
    help_text = sub.format_help()
    for action in sub._actions:
        if action.option_strings and action.dest != "help":
            assert action.help, f"{command} {action.option_strings} has no help"
            assert action.option_strings[-1] in help_text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["simulate", "--n-patients", "0"], "positive whole number"),
        (["simulate", "--n-patients", "many"], "expected a whole number"),
        (["simulate", "--seed", "-1"], "whole number >= 0"),
        (["simulate", "--bogus"], "unrecognized arguments"),
    ],
)
def test_bad_options_exit_2_with_a_clear_message(args, message):
    result = run_cli(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_params_file_is_one_line_error(tmp_path, capsys):
    code = main(["simulate", "--params", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().count("\n") == 0 and "nope.yaml: file not found" in err


def test_invalid_param_value_is_one_line_error(tmp_path, capsys):
    params = tmp_path / "params.yaml"
    params.write_text("simulate:\n  n_patients: 10\n")
    code = main(["simulate", "--params", str(params), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "n_patients must be at least 50" in err


def test_unknown_param_key_is_one_line_error(tmp_path, capsys):
    params = tmp_path / "params.yaml"
    params.write_text("simulate:\n  true_effects: {funktion: 3}\n")
    code = main(["simulate", "--params", str(params), "--out", str(tmp_path / "o")])
    assert code == 2 and "true_effects.funktion" in capsys.readouterr().err


def test_malformed_params_yaml_names_the_line(tmp_path, capsys):
    params = tmp_path / "params.yaml"
    params.write_text("simulate:\n  seed: [1, 2\n")
    code = main(["simulate", "--params", str(params), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "not valid YAML" in err and "line" in err


def test_simulate_writes_the_study(tmp_path, capsys):
    code = main(["simulate", "--n-patients", "500", "--seed", "3", "--out", str(tmp_path)])
    assert code == 0
    assert "SYNTHETIC" in capsys.readouterr().out
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["README.md", "patients.csv", "study.yaml", "therapists.xlsx", "truth.json"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["analyse", "no-such-study"], "analyse.studies has no study 'no-such-study'"),
        (
            ["summarise", "etmi-reference", "--processed-root", "/nonexistent"],
            "not found; run `dvc repro`",
        ),
        (
            ["notebooks", "etmi-reference", "--processed-root", "/nonexistent"],
            "not found; run `dvc repro`",
        ),
        (["meta", "--processed-root", "/nonexistent"], "not found; run `backpain analyse"),
    ],
)
def test_later_stages_fail_with_one_line(args, message):
    result = run_cli(*args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0
