"""`python -m computewatch`: the command line."""

from computewatch.cli import _entry

if __name__ == "__main__":
    _entry()
