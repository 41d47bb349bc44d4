"""``python -m custodes`` runs the CLI."""

from custodes.cli.main import main

main()
