"""smppgw: an asyncio SMPP v3.4 ESME gateway.

Importing this package imports nothing else: the codec in :mod:`smppgw.codec` can be used on
its own, without asyncio.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
