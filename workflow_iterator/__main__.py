"""``python -m workflow_iterator``: see ``cli.py`` (or ``--help``)."""
from __future__ import annotations

from .cli import main

if __name__ == "__main__":
    main()
