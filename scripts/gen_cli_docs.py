"""Write docs/cli.md from the CLI's own --help, so the reference cannot rot.

.venv/bin/python scripts/gen_cli_docs.py          # rewrite docs/cli.md
.venv/bin/python scripts/gen_cli_docs.py --check  # exit 1 if it is stale
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from custodes.cli.main import cli

OUT = Path(__file__).resolve().parents[1] / "docs" / "cli.md"


def _walk(cmd: click.Command, path: list[str]) -> list[tuple[list[str], click.Command]]:
    found = [(path, cmd)]
    if isinstance(cmd, click.Group):
        for name in sorted(cmd.commands):
            found += _walk(cmd.commands[name], [*path, name])
    return found


def render() -> str:
    parts = [
        "# The custodes command line\n",
        "Generated from `--help` by `scripts/gen_cli_docs.py`; a test fails when it is stale.\n",
    ]
    for path, cmd in _walk(cli, ["custodes"]):
        ctx = click.Context(cmd, info_name=" ".join(path), terminal_width=100)
        parts.append(f"\n## {' '.join(path)}\n\n```text\n{cmd.get_help(ctx)}\n```\n")
    return "".join(parts)


def main() -> None:
    text = render()
    if "--check" in sys.argv:
        if not OUT.exists() or OUT.read_text() != text:
            print("docs/cli.md is stale: run scripts/gen_cli_docs.py")
            sys.exit(1)
        return
    OUT.write_text(text)


if __name__ == "__main__":
    main()
