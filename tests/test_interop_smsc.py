"""Interop: the gateway's session and bind manager against third-party SMSC servers.

Two servers written by others: the ``smpp34`` PyPI package's server (Rust core) and node-smpp's
(npm ``smpp``, run with node). Each must take our bind (interface_version 0x34) and submits;
against an SMSC that unbinds every bind as soon as it has accepted it, the bind manager must
back off instead of rebinding in a loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Self

import pytest
import smpp34

from smppgw.codec import CommandStatus, DataSm, DeliverSm, SubmitSm
from smppgw.esme.binds import BindManager, BindManagerSettings, PartStatus, ServerSettings
from smppgw.esme.session import Session, SessionSettings

N = 20
NODE_SMPP = "smpp@0.5.1"
CACHE = Path(__file__).parent / ".cache" / "node"  # ignored by git
NODE_SMSC = Path(__file__).parent / "interop" / "node_smsc.js"


def free_port() -> int:
    """A port free on 127.0.0.1 now (smpp34's server does not tell which one port 0 got)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def session_settings(port: int, system_id: str = "smppgw") -> SessionSettings:
    return SessionSettings(
        host="127.0.0.1",
        port=port,
        system_id=system_id,
        password="secret",
        interface_version=0x34,
        response_timeout=5.0,
    )


def manager_settings(port: int, system_id: str) -> BindManagerSettings:
    return BindManagerSettings(
        servers=(ServerSettings("smsc", "127.0.0.1", port, binds=1, rate=0),),
        system_id=system_id,
        password="secret",
        response_timeout=5.0,
        reconnect_min=0.05,
        reconnect_max=2.0,
    )


async def no_inbound(_pdu: DeliverSm | DataSm) -> CommandStatus:
    return CommandStatus.ESME_ROK


def submit(i: int) -> SubmitSm:
    return SubmitSm(source_addr="ACME", destination_addr="14155550101", short_message=b"m%d" % i)


# --- smpp34's server ---------------------------------------------------------------------------


class Smpp34Smsc:
    """smpp34's Server with an application on top: the account ``smppgw`` is served (submits
    accepted with a message id); any other system_id is bound, then unbound at once."""

    def __init__(self) -> None:
        self.port = free_port()
        self.server = smpp34.Server("127.0.0.1", self.port)
        self.binds: list[str] = []
        self.submits: list[bytes] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        await self.server.start()
        self._task = asyncio.create_task(self._serve())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self.server.stop()

    async def _serve(self) -> None:
        while True:
            event = await self.server.next()
            if isinstance(event, smpp34.Esme):
                self.binds.append(event.system_id)
                if event.system_id != "smppgw":
                    asyncio.create_task(self._unbind(event))  # noqa: RUF006 - ends on its own
            elif isinstance(event, smpp34.SubmitSmEvent):
                self.submits.append(event.short_message)
                event.accept(f"r{len(self.submits)}")

    @staticmethod
    async def _unbind(esme: smpp34.Esme) -> None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await esme.unbind()


async def test_session_binds_and_submits_to_smpp34_server() -> None:
    async with Smpp34Smsc() as smsc:
        session = await Session.connect(session_settings(smsc.port))
        try:
            responses = await asyncio.gather(*(session.submit(submit(i)) for i in range(N)))
        finally:
            await session.close(5)
    assert smsc.binds == ["smppgw"]
    assert [r.command_status for r in responses] == [CommandStatus.ESME_ROK] * N
    assert sorted(r.message_id for r in responses) == sorted(f"r{i + 1}" for i in range(N))
    assert sorted(smsc.submits) == sorted(b"m%d" % i for i in range(N))


async def test_bind_manager_submits_through_smpp34_server() -> None:
    async with Smpp34Smsc() as smsc:
        manager = BindManager(manager_settings(smsc.port, "smppgw"), on_inbound=no_inbound)
        await manager.start()
        try:
            await manager.wait_bound(timeout=10)
            results = await asyncio.gather(*(manager.submit([submit(i)]) for i in range(N)))
        finally:
            await manager.stop(5)
    assert [r[0].status for r in results] == [PartStatus.ACCEPTED] * N
    assert not any(r[0].possible_duplicate for r in results)


async def test_smpp34_server_unbinding_every_bind_gets_no_reconnect_storm() -> None:
    """smpp34's server, for an account it does not know, accepts the bind and unbinds it at
    once. The manager used to take each such bind as a success and rebind within
    reconnect_min: 199 bind cycles in 22 s. With reconnect_min at 50 ms it now backs off
    exponentially: a handful of binds in 1.5 s instead of dozens."""
    async with Smpp34Smsc() as smsc:
        manager = BindManager(
            manager_settings(smsc.port, "stranger"),
            on_inbound=no_inbound,
            rng=random.Random(5),
        )
        await manager.start()
        await asyncio.sleep(1.5)
        await manager.stop(1)
    assert 2 <= len(smsc.binds) <= 12, len(smsc.binds)


# --- node-smpp's server ------------------------------------------------------------------------


def install_node_smpp() -> Path:
    """node-smpp in the test cache (installed from the npm registry once, bounded in time)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail("node and npm are needed for the node-smpp interop tests (apt install nodejs)")
    modules = CACHE / "node_modules"
    if not (modules / "smpp" / "package.json").exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(  # noqa: S603 - fixed arguments
            [npm, "install", "--no-audit", "--no-fund", "--prefix", str(CACHE), NODE_SMPP],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        if done.returncode != 0:
            pytest.fail(f"npm install {NODE_SMPP} failed:\n{done.stderr[-2000:]}")
    return modules


@contextlib.asynccontextmanager
async def node_smsc() -> AsyncIterator[int]:
    modules = install_node_smpp()
    node = shutil.which("node")
    assert node is not None
    proc = await asyncio.create_subprocess_exec(
        node,
        str(NODE_SMSC),
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "NODE_PATH": str(modules)},
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(30):
            line = await proc.stdout.readline()
        assert line.startswith(b"port "), line
        yield int(line.split()[1])
    finally:
        proc.kill()
        await proc.wait()


async def test_session_binds_and_submits_to_node_smpp_server() -> None:
    async with node_smsc() as port:
        session = await Session.connect(session_settings(port))
        try:
            responses = await asyncio.gather(*(session.submit(submit(i)) for i in range(N)))
        finally:
            await session.close(5)
        assert session.closed
    assert [r.command_status for r in responses] == [CommandStatus.ESME_ROK] * N
    assert sorted(r.message_id for r in responses) == sorted(f"node{i + 1}" for i in range(N))


async def test_node_smpp_server_unbinding_every_bind_gets_no_reconnect_storm() -> None:
    async with node_smsc() as port:
        binds = 0

        async def counting(settings: SessionSettings, **kwargs: object) -> Session:
            nonlocal binds
            binds += 1
            return await Session.connect(settings)

        manager = BindManager(
            manager_settings(port, "stranger"),
            on_inbound=no_inbound,
            session_factory=counting,
            rng=random.Random(5),
        )
        await manager.start()
        await asyncio.sleep(1.5)
        await manager.stop(1)
    assert 2 <= binds <= 12, binds
