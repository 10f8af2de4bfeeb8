"""The daemon as one instance of a cluster: its slot leaser, what it tells and whom it sees.

With ``[store] backend = "postgres"`` the daemon leases its share of every server's bind slots
(:class:`~smppgw.gateway.cluster.leaser.SlotLeaser`, the bind manager's slot source). This
module builds the leaser from the configuration, keeps the ``smppgw_cluster_slots`` and
``smppgw_cluster_rate_share`` gauges on its grants, and answers who shares the account: the
live instances, the slots each holds per server and its share of each server's rate, as the
leaser's last heartbeat read them (the ``cluster`` socket op, the ``stats`` op's ``cluster``,
``smppgw status --cluster``). Nothing here queries the database on a request's path.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from smppgw.gateway.cluster.leaser import LeaserSettings, ServerLimits, SlotLeaser
from smppgw.gateway.config.cluster import instance_name
from smppgw.gateway.stats_reply import ClusterMember
from smppgw.gateway.store.postgres import PostgresSettings, PostgresStore

if TYPE_CHECKING:
    from collections.abc import Callable

    from smppgw.esme.binds import BindManagerSettings
    from smppgw.esme.observe import Observer
    from smppgw.gateway.config import Config

__all__ = ["ClusterGauges", "Membership", "join_cluster", "leaser_settings", "open_shared_store"]

logger = logging.getLogger(__name__)


class ClusterGauges(Protocol):
    """Where an instance's grants are told (:class:`smppgw.gateway.metrics.PrometheusObserver`)."""

    def cluster_grant(self, server: str, slots: int, rate: float) -> None: ...


def leaser_settings(config: Config, bind_manager: BindManagerSettings) -> LeaserSettings:
    """The leaser's settings: the configured DSN, ``[cluster]`` and the servers' limits.

    Raises:
        ValueError: the configuration has no PostgreSQL store.
    """
    if config.postgres is None:
        msg = 'slots are leased only with [store] backend = "postgres"'
        raise ValueError(msg)
    c = config.cluster
    return LeaserSettings(
        dsn=config.postgres.dsn,
        account=bind_manager.system_id,
        servers={s.name: ServerLimits(binds=s.binds, rate=s.rate) for s in bind_manager.servers},
        instance=instance_name(c),
        schema=c.schema,
        ttl=c.ttl,
        heartbeat=c.heartbeat,
        margin=c.margin,
    )


class Membership:
    """This daemon's place in the cluster: its leaser, the gauges and the view of the others.

    Args:
        leaser: the slot leaser (started and stopped by the owner).
        gauges: where each server's held slots and rate share are set (None: nowhere).
    """

    def __init__(self, leaser: SlotLeaser, gauges: ClusterGauges | None = None) -> None:
        self.leaser = leaser
        self._gauges = gauges
        leaser.subscribe(self._granted)
        self._granted()

    def _granted(self) -> None:
        if self._gauges is None:
            return
        for server in self.leaser.settings.servers:
            grant = self.leaser.grant(server)
            self._gauges.cluster_grant(server, len(grant.slots), grant.rate)

    def members(self) -> tuple[str, Sequence[ClusterMember]]:
        """This instance's name and the live instances (the ``stats`` op's ``cluster``)."""
        return self.leaser.instance, self.leaser.members

    def reply(self) -> dict[str, object]:
        """The fields of a ``cluster`` reply: the account, each server's limits, what this
        instance binds on now (``held``), and every live instance with the slots it holds and
        its rate share per server as the last heartbeat read them."""
        settings = self.leaser.settings
        return {
            "instance": self.leaser.instance,
            "account": settings.account,
            "servers": {
                name: {"binds": limits.binds, "rate": limits.rate}
                for name, limits in settings.servers.items()
            },
            "held": {s: sorted(self.leaser.grant(s).slots) for s in sorted(settings.servers)},
            "instances": [
                {
                    "instance": m.instance,
                    "slots": {k: list(v) for k, v in m.slots.items()},
                    "rates": dict(m.rates),
                }
                for m in self.leaser.members
            ],
        }


async def join_cluster(
    config: Config, bind_manager: BindManagerSettings, gauges: ClusterGauges | None
) -> Membership:
    """Start leasing this instance's share of the account's bind slots.

    Raises:
        ClusterUnavailableError: the database cannot be reached or refused a statement.
        ClusterSchemaError: the cluster tables belong to another release.
    """
    leaser = SlotLeaser(leaser_settings(config, bind_manager))
    membership = Membership(leaser, gauges)
    await leaser.start()
    logger.info(
        "cluster: instance %s of account %s, slots leased in schema %s",
        leaser.instance,
        leaser.settings.account,
        leaser.settings.schema,
    )
    return membership


_DSN_VARIABLE = "SMPPGW_STORE_DSN"


async def open_shared_store(
    config: Config, *, observer: Observer, clock: Callable[[], float]
) -> PostgresStore:
    """The PostgreSQL store of ``[store]``, as this instance of ``[cluster]``.

    Raises:
        StoreUnavailableError: PostgreSQL cannot be reached.
        StoreSchemaError: the schema holds something else, or a newer store.
    """
    if config.postgres is None:
        msg = 'the shared store needs [store] backend = "postgres"'
        raise ValueError(msg)
    settings = PostgresSettings(
        # The DSN is resolved already (it may hold a password from dsn_env or dsn_file): it is
        # handed over as the environment the store reads it from, never as a setting.
        dsn_env=_DSN_VARIABLE,
        schema=config.postgres.schema,
        instance=instance_name(config.cluster),
        retention=config.store.retention,
        webhook=config.webhook is not None,
    )
    return await PostgresStore.open(
        settings, observer=observer, clock=clock, environ={_DSN_VARIABLE: config.postgres.dsn}
    )
