"""The root command: version, help, and the error contract every command relies on."""

from __future__ import annotations

import os
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


def test_tensorflow_import_is_quiet_on_stderr():
    code = (
        "from zoo._quiet import install_quiet_tensorflow_import as quiet; quiet()\n"
        "import tensorflow as tf\n"
        "assert int(tf.constant(2) * 3) == 6\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "absl::InitializeLog" not in out.stderr
    assert "oneDNN" not in out.stderr


def _clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "SEMZOO_VERBOSE")}
    return {**env, **extra}


def test_importing_zoo_leaves_tensorflows_logging_alone():
    code = "import os, zoo, zoo.cli.main; print(os.environ.get('TF_CPP_MIN_LOG_LEVEL'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=_clean_env())
    assert out.stdout.strip() == "None"


def test_the_console_script_quiets_unless_told_otherwise():
    code = (
        "import os, sys; from zoo import _quiet; _quiet.quiet_cli()\n"
        "print(os.environ.get('TF_CPP_MIN_LOG_LEVEL'), _quiet._FINDER in sys.meta_path)"
    )

    def run(**env):
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                              env=_clean_env(**env)).stdout.strip()

    assert run() == "3 True"
    assert run(TF_CPP_MIN_LOG_LEVEL="1") == "1 True"  # the user's choice stands
    assert run(SEMZOO_VERBOSE="1") == "None False"  # shows everything
    assert run(SEMZOO_VERBOSE="0") == "3 True"


def test_only_the_known_chatter_is_filtered():
    code = (
        "import os; from zoo._quiet import stderr_fd_filtered\n"
        "with stderr_fd_filtered():\n"
        "    os.write(2, b'WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\\n')\n"
        "    os.write(2, b'I0000 00:00:1.0 1 port.cc:153] oneDNN custom operations are on. You may see\\n')\n"
        "    os.write(2, b'something unexpected\\n')\n"
        "os.write(2, b'after\\n')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stderr == "something unexpected\nafter\n"


def test_broken_pipe_is_not_an_internal_error(tmp_path):
    # `semzoo --help | head -1`: the reader goes away; no traceback, no "internal error".
    proc = subprocess.Popen([sys.executable, "-m", "zoo.cli.main", "--help"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    _, err = proc.communicate(timeout=60)
    assert b"Traceback" not in err
    assert b"internal error" not in err


def test_progress_bars_draw_on_stderr_so_stdout_stays_machine_readable(capsys):
    from zoo.cli.options import progress_bar

    with progress_bar("fine-tuning", total=4) as update:
        update(4)
    out, err = capsys.readouterr()
    assert out == "" and "fine-tuning" in err and "4/4" in err
