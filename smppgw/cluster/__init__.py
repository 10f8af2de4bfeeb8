"""Cluster mode: several gateway processes serving one account through PostgreSQL.

:mod:`smppgw.cluster.plan` decides, purely, which bind slots an instance takes and gives up;
:mod:`smppgw.cluster.leaser` runs it every heartbeat against PostgreSQL (asyncpg, the
``postgres`` extra) and serves the bind manager as a :class:`smppgw.slots.SlotSource`.
"""

from __future__ import annotations

from smppgw.cluster.plan import Instance, Lease, Plan, SlotKey, plan

__all__ = ["Instance", "Lease", "Plan", "SlotKey", "plan"]
