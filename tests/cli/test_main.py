"""The root command: version, help, and the error contract every command relies on."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import zoo
from zoo.cli import main as cli_main

REPO = Path(__file__).resolve().parents[2]


def test_version(cli):
    result = cli("--version")
    assert result.exit_code == 0
    assert result.output.strip() == f"semzoo {zoo.__version__}"


def test_help_lists_every_registered_command_with_one_line(cli):
    result = cli("--help")
    assert result.exit_code == 0
    commands = list(cli_main.app.registered_commands) + list(cli_main.app.registered_groups)
    assert commands, "no command registered"
    for command in cli_main.app.registered_commands:
        name = command.name or command.callback.__name__.replace("_", "-")
        assert re.search(rf"\b{re.escape(name)}\b", result.output), name


def test_console_script_runs_without_importing_tensorflow():
    code = "import sys; from zoo.cli import main; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_ci_runs_the_readme_test_command():
    ci = (REPO / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci in (REPO / "README.md").read_text()
