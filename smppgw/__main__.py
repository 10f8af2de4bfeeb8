"""``python -m smppgw``: the same as the ``smppgw`` command."""

from smppgw.cli import main

raise SystemExit(main())
