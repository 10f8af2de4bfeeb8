"""smppgw: an asyncio SMPP v3.4 ESME gateway, in layers that import only inward.

* :mod:`smppgw.codec` — the sans-IO SMPP codec and connection state machine (standard library
  only, no asyncio).
* :mod:`smppgw.esme` — the asyncio ESME library: sessions, the bind manager, rate limiting,
  retry policy (standard library and the codec only).
* :mod:`smppgw.testing` — the SMSC simulator, for tests and local runs.
* :mod:`smppgw.gateway` — the daemon (``smppgw run``): intake socket, durable store, events,
  webhook, metrics, configuration and the command line; needs ``smppgw[gateway]``.

Importing this package imports nothing else.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
