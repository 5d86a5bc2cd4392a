"""`python -m facepolicy.cli`: the command line (facepolicy.app.cli) run as a module."""

from .app.cli import main

if __name__ == "__main__":
    main()
