"""``python -m smppgw.simulator``."""

from .cli import main

raise SystemExit(main())
