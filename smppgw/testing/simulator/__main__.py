"""``python -m smppgw.testing.simulator``."""

from .cli import main

raise SystemExit(main())
