"""`python -m sweeper` runs the command line."""

from sweeper.cli import app

app(prog_name="sweeper")
