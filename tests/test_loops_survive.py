"""The daemon's long-running loops outlive the unexpected, and the watchdog tells the truth.

A bug in one send, in one connect, or a full disk must not strand a message, leave a server
unbound for good, or keep the disk's space in the WAL; systemd's watchdog is fed only while
the store's writer answers, and its status line says when the store is unhealthy.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from test_store_faults import Client, FullAtCommit, gateway_config, request

from smppgw.codec import CommandStatus, DataSm, DeliverSm
from smppgw.esme.binds import BindManager, BindManagerSettings, ServerSettings, SessionLike
from smppgw.esme.observe import NULL_OBSERVER, Observer
from smppgw.esme.session import InboundHandler, Session, SessionSettings
from smppgw.gateway.daemon import Gateway, GatewayOptions, _watchdog
from smppgw.gateway.sdnotify import Notifier
from smppgw.gateway.store import SqliteStore, StoreSettings
from smppgw.testing.simulator import Account, Simulator, SimulatorSettings

TIMEOUT = 20.0


class Clock:
    """Wall-clock time that a test can move forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


async def test_a_message_whose_send_fails_unexpectedly_goes_back_to_the_queue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unexpected exception in a send task left its message claimed (`submitting`) until
    the daemon was restarted."""
    clock = Clock()
    gateway = Gateway(gateway_config(tmp_path), GatewayOptions(wait_bound=5), clock=clock)
    async with asyncio.timeout(TIMEOUT):
        await gateway.start()
        try:
            manager = gateway.manager
            assert manager is not None
            submit = manager.submit
            failures = [RuntimeError("a bug")]

            async def submit_with_a_bug(*args: Any, **kwargs: Any) -> Any:
                if failures:
                    raise failures.pop()
                return await submit(*args, **kwargs)

            monkeypatch.setattr(manager, "submit", submit_with_a_bug)
            events = await Client.connect(gateway.config.intake.path)
            await events.call({"op": "subscribe", "cursor": 0})
            client = await Client.connect(gateway.config.intake.path)
            reply = await client.call({"op": "submit", "to": "919812345678", "text": "again"})
            assert reply["ok"] is True
            store = gateway.store
            assert store is not None
            while failures or (await store.counts())["queued"] == 0:  # noqa: ASYNC110
                await asyncio.sleep(0.01)  # the failure, then the message back in the queue
            clock.offset += 10.0  # past its delay
            payload: dict[str, Any] = {}
            while not payload.get("final"):
                event = json.loads(await events.reader.readline())
                payload = event.get("payload", {})
            assert payload["id"] == reply["id"]
            # Sent and ended by its receipt (the simulator fails one message in ten on
            # purpose): not stranded, not unknown.
            assert payload["state"] in {"delivered", "failed", "expired", "rejected"}
            assert payload["possible_duplicate"] is False  # nothing of it was on the wire
            await events.close()
            await client.close()
        finally:
            await gateway.stop(2)


async def test_a_full_disk_gives_the_space_the_wal_held_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a small volume the WAL kept the space it had grown to; freed space went into it
    again instead of to the store."""
    store = await SqliteStore.open(StoreSettings(str(tmp_path / "s.db"), synchronous="normal"))
    wal = tmp_path / "s.db-wal"
    try:
        for n in range(20):
            await store.add_messages([request(n * 100 + i) for i in range(100)])
        assert wal.stat().st_size > 100_000
        disk = FullAtCommit(store, monkeypatch)
        disk.full = True
        with pytest.raises(Exception, match="disk is full"):
            await store.add_messages([request(99_999)])
        disk.full = False
        assert await store.status(message_id="none") is None  # the writer went round
        assert wal.stat().st_size == 0
    finally:
        await store.close()


async def accept(_pdu: DeliverSm | DataSm) -> CommandStatus:
    return CommandStatus.ESME_ROK


async def test_the_reconnect_loop_outlives_an_unexpected_exception() -> None:
    """An exception other than a link error ended the server's reconnect task: the server
    was never bound again."""
    settings = SimulatorSettings(
        servers=1, tls=False, accounts=(Account("smppgw", "pw", max_binds_per_server=1),)
    )
    async with Simulator(settings) as sim:
        failures = [RuntimeError("a bug")]

        async def connect(
            settings: SessionSettings,
            *,
            on_inbound: InboundHandler | None = None,
            observer: Observer = NULL_OBSERVER,
            clock: Callable[[], float] = time.monotonic,
        ) -> SessionLike:
            if failures:
                raise failures.pop()
            return await Session.connect(
                settings, on_inbound=on_inbound, observer=observer, clock=clock
            )

        info = sim.servers[0]
        manager = BindManager(
            BindManagerSettings(
                (ServerSettings(name=info.name, host=info.host, port=info.plain_port, binds=1),),
                "smppgw",
                "pw",
                reconnect_min=0.05,
                reconnect_max=0.1,
            ),
            on_inbound=accept,
            session_factory=connect,
        )
        await manager.start()
        try:
            await manager.wait_bound(1, timeout=TIMEOUT)
        finally:
            await manager.stop(2)
    assert not failures


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    sock.setblocking(False)  # noqa: FBT003 - the socket API's own flag
    yield sock
    sock.close()


async def datagram(sock: socket.socket) -> str:
    data = await asyncio.get_running_loop().sock_recv(sock, 4096)
    return data.decode()


async def next_watchdog(sock: socket.socket) -> None:
    """Wait for the next ``WATCHDOG=1``; only status lines may come before it."""
    while (line := await datagram(sock)) != "WATCHDOG=1":
        assert line.startswith("STATUS=")


async def test_the_watchdog_is_fed_while_the_store_answers_and_status_tells_its_health(
    tmp_path: Path, notify_socket: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway = Gateway(gateway_config(tmp_path), GatewayOptions(wait_bound=5))
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "notify")})
    async with asyncio.timeout(TIMEOUT):
        await gateway.start()
        watchdog = asyncio.create_task(_watchdog(notifier, 0.05, gateway))
        release = asyncio.Event()
        try:
            assert isinstance(gateway.store, SqliteStore)
            assert await datagram(notify_socket) == "WATCHDOG=1"
            disk = FullAtCommit(gateway.store, monkeypatch)
            disk.full = True
            client = await Client.connect(gateway.config.intake.path)
            reply = await client.call({"op": "submit", "to": "919800000001", "text": "full"})
            assert reply["error"] == "storage_full"
            await client.close()
            seen = [await datagram(notify_socket)]
            while not seen[-1].startswith("STATUS="):
                seen.append(await datagram(notify_socket))
            assert seen[-1].startswith("STATUS=unhealthy: store: store commit failed: the disk")
            # A full disk is no reason for systemd to restart the daemon: still fed.
            assert await datagram(notify_socket) == "WATCHDOG=1"

            # A writer that does not answer (a disk that hangs) is not fed.
            commit = gateway.store._commit

            async def hung(batch: Any) -> None:
                await release.wait()
                await commit(batch)

            monkeypatch.setattr(gateway.store, "_commit", hung)
            disk.full = False
            fed = 0
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.5):  # ten intervals
                    while True:
                        fed += await datagram(notify_socket) == "WATCHDOG=1"
            assert fed <= 1  # the round trip already in flight may still have been answered
            release.set()
            await next_watchdog(notify_socket)  # answered again: fed again
        finally:
            release.set()
            watchdog.cancel()
            await gateway.stop(2)
