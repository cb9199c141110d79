"""Every command's --help renders (help texts are rich markup: a stray bracket breaks them)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from attrackt.cli import app

COMMANDS = sorted(info.name or info.callback.__name__ for info in app.registered_commands)


def test_every_command_is_listed():
    assert {"run", "prepare", "link", "finetune", "loop", "napari"} <= set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_help_renders(command):
    result = CliRunner().invoke(app, [command, "--help"], terminal_width=100)
    assert result.exit_code == 0, result.output or repr(result.exception)
    assert f"attrackt {command}" in result.output
    assert "--help" in result.output
