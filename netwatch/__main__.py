"""``python -m netwatch``: the same as the ``netwatch`` console script."""

from netwatch.cli import main

raise SystemExit(main())
