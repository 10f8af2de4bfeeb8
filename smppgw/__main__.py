"""``python -m smppgw``: the same as the ``smppgw`` command."""

from smppgw.gateway.cli import main

raise SystemExit(main())
