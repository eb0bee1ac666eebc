"""``python -m impasto``."""

from .cli import main

raise SystemExit(main())
