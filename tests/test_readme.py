"""The README cannot rot: every command it shows exists, and its set-up is two commands."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from custodes.cli.main import cli
from tests.conftest import REPO

README = (REPO / "README.md").read_text()


def _commands() -> list[list[str]]:
    """The sub-command path of every `custodes ...` line in the README's sh blocks."""
    found: set[tuple[str, ...]] = set()
    for block in re.findall(r"```sh\n(.*?)```", README, flags=re.S):
        for line in block.splitlines():
            m = re.match(r"\s*(?:\.venv/bin/)?custodes\s+(.*)", line)
            if not m:
                continue
            tokens = m.group(1).split()
            if tokens[:1] == ["--data"]:
                tokens = tokens[2:]
            path: list[str] = []
            for tok in tokens:
                if re.fullmatch(r"[a-z][a-z-]*", tok):
                    path.append(tok)
                else:
                    break
            found.add(tuple(path[:2]))
    return [list(p) for p in sorted(found) if p]


@pytest.mark.parametrize("path", _commands(), ids=" ".join)
def test_every_command_in_the_readme_exists(path: list[str]) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output


def test_setup_is_exactly_two_commands() -> None:
    block = README.split("## Set-up: two commands", 1)[1].split("```sh\n", 1)[1].split("```")[0]
    commands = [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]
    assert commands == ["make demo", "make test"]


def test_the_cli_reference_is_generated_from_the_current_help() -> None:
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen_cli_docs.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_relative_link_in_the_readme_works_in_a_clone() -> None:
    """A link to a file outside the project (such as ../shared/) is broken in a clone."""
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", README)
    local = [x for x in links if "://" not in x and not x.startswith("mailto:")]
    assert local, "the README links to no file of its own"
    for target in local:
        path = (REPO / target).resolve()
        assert path.is_relative_to(REPO.resolve()), f"{target} lies outside the project"
        assert path.exists(), f"{target} does not exist"
