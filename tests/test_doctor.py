"""`smppgw doctor` against the simulator: every slot timed, each failure put in words."""

from __future__ import annotations

import io
import itertools
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from smppgw.codec import CommandStatus
from smppgw.esme.binds import BindManagerSettings, ServerSettings
from smppgw.esme.numbers import validate_sender
from smppgw.esme.session import TlsSettings
from smppgw.gateway.cli import CliError
from smppgw.gateway.cli import build_parser as _parser
from smppgw.gateway.cli.doctor import doctor_command as _cmd_doctor
from smppgw.gateway.doctor import Step, diagnose, id_form, recommended_window
from smppgw.testing.simulator import Account, Simulator, SimulatorSettings

PASSWORD = "doctorpw"


@pytest.fixture
async def simulator() -> AsyncIterator[Simulator]:
    settings = SimulatorSettings(
        accounts=(Account("smppgw", PASSWORD, max_binds_per_server=3),),
        tls=True,
        dlr_delay=(0.01, 0.02),
        dlr_outcomes=(("DELIVRD", 0, 1.0),),
    )
    async with Simulator(settings) as sim:
        yield sim


def account(
    sim: Simulator, *, binds: int = 3, password: str = PASSWORD, **server: object
) -> BindManagerSettings:
    servers = tuple(
        ServerSettings(name=info.name, host=info.host, port=info.plain_port, binds=binds, rate=50)
        for info in sim.servers
    )
    if server:
        servers = (ServerSettings(**{"name": "smpp1", "binds": binds, **server}), *servers[1:])  # type: ignore[arg-type]
    return BindManagerSettings(
        servers=servers,
        system_id="smppgw",
        password=password,
        connect_timeout=3.0,
        bind_timeout=3.0,
        response_timeout=3.0,
    )


async def test_every_slot_of_every_server_binds_and_is_timed_step_by_step(
    simulator: Simulator,
) -> None:
    report = await diagnose(account(simulator), probes=2)
    assert report.ok
    assert [(s.name, s.bound, len(s.slots)) for s in report.servers] == [
        ("smpp1", 3, 3),
        ("smpp2", 3, 3),
    ]
    for server in report.servers:
        for slot in server.slots:
            assert list(slot.timings) == [Step.RESOLVE, Step.CONNECT, Step.BIND]
            assert len(slot.enquire_link_rtts) == 2
        assert server.round_trip is not None
        assert server.recommended_window == recommended_window(50, 3, server.round_trip)
    # Every probe link was unbound and closed again: the account can bind all slots anew.
    again = await diagnose(account(simulator), probes=1)
    assert again.ok


async def test_a_test_message_learns_that_receipts_carry_the_same_id(simulator: Simulator) -> None:
    report = await diagnose(
        account(simulator, binds=1),
        test_to="14155550101",
        sender=validate_sender("ACME"),
        receipt_timeout=10,
        probes=1,
    )
    message = report.test_message
    assert message is not None
    assert message.problem is None, message.problem
    assert message.submit_status is CommandStatus.ESME_ROK
    assert message.receipt_id == message.message_id
    assert message.receipt_stat == "DELIVRD"
    assert message.id_forms == {
        "receipted_message_id": "the same id in receipts as in responses",
        "text": "the same id in receipts as in responses",
    }
    assert report.ok


async def test_a_test_message_learns_that_receipts_write_hex_ids_in_decimal() -> None:
    settings = SimulatorSettings(
        accounts=(Account("smppgw", PASSWORD),),
        tls=False,
        message_id_format="hex",
        receipt_id_format="decimal",
        dlr_delay=(0.01, 0.02),
    )
    async with Simulator(settings) as sim:
        sim._ids = itertools.count(1000)  # ids with a hex letter: 0x3e8 is 1000
        report = await diagnose(
            account(sim, binds=1),
            test_to="14155550101",
            sender=validate_sender("ACME"),
            receipt_timeout=10,
            probes=1,
        )
    message = report.test_message
    assert message is not None
    # The simulator writes the TLV as given and the text in decimal, as some SMSCs do.
    assert message.id_forms == {
        "receipted_message_id": "the same id in receipts as in responses",
        "text": "hex ids in responses, the same ids in decimal in receipts",
    }


async def test_a_wrong_password_is_named_at_the_bind(simulator: Simulator) -> None:
    report = await diagnose(account(simulator, password="wrong"), probes=1)
    assert not report.ok
    slot = report.servers[0].slots[0]
    assert slot.failed_step is Step.BIND
    assert slot.status is CommandStatus.ESME_RINVPASWD
    assert slot.problem == "bind: wrong password for system_id 'smppgw' (ESME_RINVPASWD)"
    assert "wrong" not in slot.problem.replace("wrong password", "")  # the password never shows


async def test_a_port_nobody_listens_on_is_named_refused(simulator: Simulator) -> None:
    free = simulator.servers[0].plain_port
    await simulator.stop()
    report = await diagnose(account(simulator, binds=1, host="127.0.0.1", port=free), probes=1)
    slot = report.servers[0].slots[0]
    assert slot.failed_step is Step.CONNECT
    assert slot.problem is not None
    assert "refused the connection" in slot.problem
    assert f"127.0.0.1:{free}" in slot.problem


async def test_more_binds_than_the_account_allows_is_named_a_bind_limit(
    simulator: Simulator,
) -> None:
    report = await diagnose(account(simulator, binds=4), probes=1)
    assert not report.ok
    slots = report.servers[0].slots
    assert [slot.ok for slot in slots] == [True, True, True, False]
    assert slots[3].failed_step is Step.BIND
    assert slots[3].problem is not None
    assert slots[3].problem.startswith("bind limit: ")
    assert "refused bind 4 of 4" in slots[3].problem
    assert "after accepting 3" in slots[3].problem


async def test_an_untrusted_tls_certificate_is_named(simulator: Simulator) -> None:
    info = simulator.servers[0]
    assert info.tls_port is not None
    untrusted = TlsSettings(ca_file=None, minimum_version="TLSv1.2")
    report = await diagnose(
        account(simulator, binds=1, host="127.0.0.1", port=info.tls_port, tls=untrusted),
        probes=1,
    )
    slot = report.servers[0].slots[0]
    assert slot.failed_step is Step.TLS
    assert slot.problem is not None
    assert slot.problem.startswith("TLS: handshake with 127.0.0.1:")
    assert "failed: certificate verify failed: " in slot.problem
    assert slot.problem.endswith("([tls] ca_file, server_name)")
    # With the simulator's CA the same port binds, and the handshake is timed on its own.
    trusted = TlsSettings(ca_file=simulator.ca_file, minimum_version="TLSv1.2")
    report = await diagnose(
        account(simulator, binds=1, host="127.0.0.1", port=info.tls_port, tls=trusted),
        probes=1,
    )
    assert report.servers[0].slots[0].ok
    assert Step.TLS in report.servers[0].slots[0].timings


async def test_a_plain_port_spoken_to_in_tls_is_named(simulator: Simulator) -> None:
    tls = TlsSettings(ca_file=simulator.ca_file, minimum_version="TLSv1.2")
    info = simulator.servers[0]
    report = await diagnose(
        account(simulator, binds=1, host="127.0.0.1", port=info.plain_port, tls=tls), probes=1
    )
    slot = report.servers[0].slots[0]
    assert slot.failed_step is Step.TLS
    assert slot.problem is not None
    assert slot.problem.startswith("TLS: handshake with 127.0.0.1:")
    assert slot.problem.endswith("failed: the server does not speak TLS (a plain port?)")


async def test_a_name_that_does_not_resolve_is_named_at_dns(simulator: Simulator) -> None:
    report = await diagnose(
        account(simulator, binds=1, host="doctor-check.invalid", port=2775), probes=1
    )
    slot = report.servers[0].slots[0]
    assert slot.failed_step is Step.RESOLVE
    assert slot.problem is not None
    assert slot.problem.startswith("DNS: ")
    assert "'doctor-check.invalid'" in slot.problem


def test_the_window_covers_twice_the_requests_in_flight() -> None:
    # 50 msg/s over 3 binds, 120 ms round trip: 2 x 16.7 x 0.12 = 4.
    assert recommended_window(50, 3, 0.120) == 4
    assert recommended_window(50, 3, 0.001) == 1
    assert recommended_window(1000, 1, 10.0) == 100
    assert recommended_window(0, 3, 0.1) == 100


@pytest.mark.parametrize(
    ("message_id", "receipt_id", "form"),
    [
        ("1a2b", "1a2b", "the same id in receipts as in responses"),
        ("1A2B", "001a2b", "the same id in receipts, in another letter case or with leading zeros"),
        ("1a2b", "6699", "hex ids in responses, the same ids in decimal in receipts"),
        ("6699", "1a2b", "decimal ids in responses, the same ids in hex in receipts"),
        ("1a2b", "zz", None),
        ("7", "7", "the same id in receipts as in responses (too short to tell hex from decimal)"),
    ],
)
def test_id_forms(message_id: str, receipt_id: str, form: str | None) -> None:
    assert id_form(message_id, receipt_id) == form


def write_config(path: Path, sim: Simulator, *, binds: int) -> Path:
    servers = "".join(
        f'[[servers]]\nname = "{info.name}"\nhost = "{info.host}"\nport = {info.plain_port}\n'
        f"binds = {binds}\n\n"
        for info in sim.servers
    )
    path.write_text(
        '[gateway]\nsystem_id = "smppgw"\npassword_env = "DOCTOR_TEST_PASSWORD"\n\n'
        f"{servers}"
        f'[store]\npath = "{path.parent / "gw.db"}"\n'
        f'[intake]\npath = "{path.parent / "gw.sock"}"\n'
    )
    return path


async def run_cli(argv: list[str]) -> tuple[int, str, str]:
    args = _parser().parse_args(argv)
    out, err = io.StringIO(), io.StringIO()
    code = await _cmd_doctor(args, out, err)
    return code, out.getvalue(), err.getvalue()


async def test_the_cli_exits_0_when_every_check_passes_and_prints_json(
    simulator: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCTOR_TEST_PASSWORD", PASSWORD)
    config = write_config(tmp_path / "gw.toml", simulator, binds=2)
    code, out, _ = await run_cli(
        [
            "doctor",
            "--config",
            str(config),
            "--json",
            "--probes",
            "1",
            "--to",
            "14155550101",
            "--from",
            "ACME",
            "--receipt-timeout",
            "10",
        ]
    )
    assert code == 0
    report = json.loads(out)
    assert report["ok"] is True
    assert [server["bound"] for server in report["servers"]] == [2, 2]
    assert report["test_message"]["receipt_stat"] == "DELIVRD"
    assert PASSWORD not in out


async def test_the_cli_exits_1_and_names_each_failure_in_text(
    simulator: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCTOR_TEST_PASSWORD", "badpass")
    config = write_config(tmp_path / "gw.toml", simulator, binds=1)
    code, out, _ = await run_cli(["doctor", "--config", str(config), "--probes", "1"])
    assert code == 1
    assert "FAILED at bind" in out
    assert "bind: wrong password for system_id 'smppgw' (ESME_RINVPASWD)" in out
    assert out.splitlines()[-1] == "some checks FAILED"
    assert "badpass" not in out


async def test_the_cli_refuses_a_bad_number_or_a_missing_sender(
    simulator: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCTOR_TEST_PASSWORD", PASSWORD)
    config = write_config(tmp_path / "gw.toml", simulator, binds=1)
    with pytest.raises(CliError, match=r"\+"):
        await run_cli(["doctor", "--config", str(config), "--to", "+14155550101", "--from", "A"])
    with pytest.raises(CliError, match="needs a sender"):
        await run_cli(["doctor", "--config", str(config), "--to", "14155550101"])
