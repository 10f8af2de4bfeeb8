"""smppgw.gateway: the daemon (``smppgw run``) and its command line.

It needs the ``gateway`` extra (``pip install 'smppgw[gateway]'``): msgspec, prometheus-client
and uvloop.
"""

import importlib.util

_MISSING = [
    name for name in ("msgspec", "prometheus_client") if importlib.util.find_spec(name) is None
]
if _MISSING:
    raise ImportError(
        f"smppgw's daemon and command line need {', '.join(_MISSING)}: "
        "pip install 'smppgw[gateway]'"
    )
