"""An SMSC simulator modelled on the provider's documented behaviour.

Several servers (default two, ``smpp1`` and ``smpp2``), each with a plain and a TLS port;
accounts limited in binds and submits per second *per server* (beyond the rate: ESME_RTHROTTLED);
submit_sm / data_sm answered with a message id; delivery receipts sent after a delay on *any*
receiver-capable bind of the same system_id, on any server, chosen at random, as the provider
relays them; mobile-originated messages (MO, concatenated when long) injected with
:meth:`Simulator.send_mo` or generated at a rate, delivered under the same rules; faults to switch
on. Each link speaks the SMSC role of :class:`smppgw.codec.SmppConnection` (one
asyncio.Protocol per connection). Counters in :class:`SimulatorStats` let tests prove that
nothing was lost.
"""

from .mo import build_mo_parts
from .server import Simulator
from .settings import (
    Account,
    FaultSettings,
    MoRecord,
    MoSettings,
    ServerInfo,
    SimulatorSettings,
    SimulatorStats,
    UnknownAccountError,
)

__all__ = [
    "Account",
    "FaultSettings",
    "MoRecord",
    "MoSettings",
    "ServerInfo",
    "Simulator",
    "SimulatorSettings",
    "SimulatorStats",
    "UnknownAccountError",
    "build_mo_parts",
]
