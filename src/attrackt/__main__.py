"""``python -m attrackt`` (also ``torchrun -m attrackt``) runs the command-line interface."""

from attrackt.cli import app

app(prog_name="attrackt")
