"""Every example of README's "Using smppgw as a library" runs as written against the simulator.

Each fenced python block of the section is executed in a worker thread (it calls
``asyncio.run`` itself) while the simulator serves on this test's loop; what the example prints
is what the README says it prints.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from smppgw.testing.simulator import Account, Simulator, SimulatorSettings

README = Path(__file__).resolve().parent.parent / "README.md"
SECTION = "## Using smppgw as a library"


def examples() -> list[str]:
    text = README.read_text()
    start = text.index(SECTION)
    end = text.index("\n## ", start + len(SECTION))
    return re.findall(r"```python\n(.*?)```", text[start:end], flags=re.DOTALL)


@pytest.fixture
async def simulator() -> AsyncIterator[Simulator]:
    settings = SimulatorSettings(
        tls=False,
        names=("smpp1", "smpp2"),
        accounts=(Account("acme", "secret", max_binds_per_server=3, rate_per_server=0),),
        dlr_delay=(0.0, 0.05),
        dlr_outcomes=(("DELIVRD", 0, 1.0),),
        message_id_format="hex",
        receipt_id_format="decimal",  # receipts name the resp's hex id in decimal
        seed=5,
    )
    async with Simulator(settings) as sim:
        yield sim


def run(code: str, sim: Simulator) -> str:
    first = sim.servers[0]
    namespace: dict[str, object] = {
        "__name__": "readme_example",
        "HOST": first.host,
        "PORT": first.plain_port,
        "SERVERS": [(info.name, info.plain_port) for info in sim.servers],
        "SYSTEM_ID": "acme",
        "PASSWORD": "secret",
    }
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - the README's own code
    return out.getvalue()


def test_the_section_has_the_two_examples() -> None:
    assert len(examples()) == 2


async def test_one_bind_sends_a_text_and_gets_its_receipt(simulator: Simulator) -> None:
    printed = await asyncio.wait_for(asyncio.to_thread(run, examples()[0], simulator), 60)
    assert printed.splitlines() == ["DEFAULT True 1", "['DELIVRD']"]


async def test_a_bind_manager_sends_a_long_text_and_matches_every_parts_receipt(
    simulator: Simulator,
) -> None:
    printed = await asyncio.wait_for(asyncio.to_thread(run, examples()[1], simulator), 60)
    lines = printed.splitlines()
    statuses = eval(lines[0])  # noqa: S307 - a list literal the example printed
    assert [status for status, _ in statuses] == ["accepted"] * 3
    assert {server for _, server in statuses} <= {"smpp1", "smpp2"}
    assert sorted(lines[1:]) == [f"part {n} of 3 DELIVRD" for n in (1, 2, 3)]
