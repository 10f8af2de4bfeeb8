"""Cluster mode: several gateway processes serving one account through PostgreSQL.

:mod:`smppgw.gateway.cluster.plan` decides, purely, which bind slots an instance takes and
gives up; :mod:`smppgw.gateway.cluster.leaser` runs it every heartbeat against PostgreSQL
(asyncpg, the ``postgres`` extra) and serves the bind manager as a
:class:`smppgw.esme.slots.SlotSource`. The leaser is imported from its module, so that this
package's planner needs no driver.
"""

from __future__ import annotations

from smppgw.gateway.cluster.plan import Instance, Lease, Plan, SlotKey, plan

__all__ = ["Instance", "Lease", "Plan", "SlotKey", "plan"]
