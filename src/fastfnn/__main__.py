"""``python -m fastfnn`` runs the ``fastfnn`` command."""

from .cli import main

raise SystemExit(main())
