"""The sans-IO SMPP connection: bytes in, events out, bytes to send, one timer; an ESME and an
SMSC back to back, with a fake clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from smppgw.codec import (
    AlertNotification,
    BadPdu,
    BindTransceiver,
    BindTransceiverResp,
    CommandStatus,
    DataSm,
    DataSmResp,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkReceived,
    EnquireLinkResp,
    EnquireLinkSent,
    Event,
    GenericNack,
    LateResponse,
    LinkDead,
    LocalProtocolError,
    Pdu,
    PduReceived,
    QuerySm,
    RequestRefused,
    RequestRejected,
    ResponseReceived,
    ResponseTimedOut,
    Role,
    SmppConnection,
    State,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    UnbindReceived,
    UnbindResp,
    WindowFullError,
    decode,
    encode,
)

RESPONSE = 30.0
ENQUIRE = 60.0


def pair(
    *, window: int = 10, idle: float | None = 300.0, response: float | None = RESPONSE
) -> tuple[SmppConnection, SmppConnection]:
    """An ESME and an SMSC, bound (transceiver) at t=0."""
    esme = SmppConnection(
        Role.ESME,
        window=window,
        response_timeout=response,
        enquire_link_interval=ENQUIRE,
        idle_timeout=idle,
    )
    smsc = SmppConnection(Role.SMSC, window=window, response_timeout=response)
    events = smsc.receive_data(esme.send(BindTransceiver(system_id="a", password="b"), 0.0), 0.0)
    assert events == [PduReceived(BindTransceiver(sequence_number=1, system_id="a", password="b"))]
    resp = smsc.send(BindTransceiverResp(sequence_number=1, system_id="SMSC"), 0.0)
    [bound] = esme.receive_data(resp, 0.0)
    assert isinstance(bound, ResponseReceived)
    assert esme.state is smsc.state is State.BOUND_TRX
    return esme, smsc


def test_a_request_goes_out_with_the_next_sequence_number_stamped_whatever_its_field_says() -> None:
    esme, _smsc = pair()
    pdu = SubmitSm(sequence_number=999, destination_addr="447700900123", short_message=b"hi")
    wire = esme.send(pdu, 1.0)
    assert esme.last_sequence == 2
    assert wire == encode(
        SubmitSm(sequence_number=2, destination_addr="447700900123", short_message=b"hi")
    )
    assert decode(wire).sequence_number == 2


def test_a_request_already_carrying_its_sequence_number_goes_out_as_encoded() -> None:
    esme, _ = pair()
    pdu = SubmitSm(sequence_number=2, destination_addr="1")
    assert esme.send(pdu, 1.0) == encode(pdu)


def test_a_response_comes_back_with_the_request_it_answers() -> None:
    esme, smsc = pair()
    request = SubmitSm(destination_addr="447700900123", short_message=b"hi")
    [received] = smsc.receive_data(esme.send(request, 1.0), 1.0)
    assert isinstance(received, PduReceived)
    answer = SubmitSmResp(sequence_number=received.pdu.sequence_number, message_id="m1")
    events = esme.receive_data(smsc.send(answer, 1.0), 1.5)
    assert events == [ResponseReceived(request, answer)]
    assert esme.outstanding == 0
    assert esme.window_free == 10


def test_a_generic_nack_is_a_rejection_of_its_request_not_a_lost_link() -> None:
    esme, _smsc = pair()
    request = SubmitSm(destination_addr="1")
    esme.send(request, 1.0)
    nack = GenericNack(sequence_number=2, command_status=CommandStatus.ESME_RTHROTTLED)
    assert esme.receive_data(encode(nack), 1.0) == [RequestRejected(request, nack)]
    assert esme.bound


def test_the_engine_answers_enquire_link_itself_byte_for_byte() -> None:
    esme, _smsc = pair()
    assert esme.receive_data(encode(EnquireLink(sequence_number=7)), 5.0) == [
        EnquireLinkReceived(EnquireLink(sequence_number=7))
    ]
    assert esme.data_to_send() == encode(EnquireLinkResp(sequence_number=7))
    assert esme.data_to_send() == b""


def test_automatic_answers_of_one_read_come_out_together_in_order() -> None:
    esme, _ = pair()
    data = encode(EnquireLink(sequence_number=7)) + encode(EnquireLink(sequence_number=8))
    esme.receive_data(data, 5.0)
    assert esme.data_to_send() == encode(EnquireLinkResp(sequence_number=7)) + encode(
        EnquireLinkResp(sequence_number=8)
    )


def test_pdus_fed_one_octet_at_a_time_give_the_same_events() -> None:
    esme, _smsc = pair()
    wire = encode(DeliverSm(sequence_number=5, short_message=b"x"))
    events: list[Event] = []
    for i in range(len(wire)):
        events += esme.receive_data(wire[i : i + 1], 1.0)
    assert events == [PduReceived(DeliverSm(sequence_number=5, short_message=b"x"))]


def test_a_command_length_out_of_bounds_is_answered_and_ends_the_link() -> None:
    esme = SmppConnection(Role.ESME, max_command_length=1024)
    events = esme.receive_data((2048).to_bytes(4, "big") + b"\x00" * 12, 1.0)
    assert events == [
        LinkDead("sent a bad frame: command_length 2048 exceeds the maximum of 1024", frozen=False)
    ]
    assert esme.data_to_send() == encode(GenericNack(command_status=CommandStatus.ESME_RINVCMDLEN))
    assert esme.state is State.CLOSED
    assert esme.receive_data(encode(EnquireLink(sequence_number=1)), 2.0) == []  # closed


def test_an_undecodable_pdu_is_nacked_with_its_sequence_number_and_the_link_carries_on() -> None:
    esme, _ = pair()
    bad = b"\x00\x00\x00\x10\x00\x00\x00\x99\x00\x00\x00\x00\x00\x00\x00\x2a"
    [event, probe] = esme.receive_data(bad + encode(EnquireLink(sequence_number=3)), 1.0)
    assert isinstance(event, BadPdu)
    assert probe == EnquireLinkReceived(EnquireLink(sequence_number=3))
    assert esme.data_to_send() == encode(
        GenericNack(sequence_number=42, command_status=CommandStatus.ESME_RINVCMDID)
    ) + encode(EnquireLinkResp(sequence_number=3))
    assert esme.bound


@pytest.mark.parametrize(
    ("role", "request_pdu", "answer"),
    [
        (
            Role.ESME,
            DeliverSm(sequence_number=4),
            DeliverSmResp(sequence_number=4, command_status=CommandStatus.ESME_RINVBNDSTS),
        ),
        (
            Role.ESME,
            DataSm(sequence_number=4),
            DataSmResp(sequence_number=4, command_status=CommandStatus.ESME_RINVBNDSTS),
        ),
        (
            Role.SMSC,
            SubmitSm(sequence_number=4),
            SubmitSmResp(
                sequence_number=4, command_status=CommandStatus.ESME_RINVBNDSTS, body_omitted=True
            ),
        ),
        (
            Role.ESME,
            AlertNotification(sequence_number=4),
            GenericNack(sequence_number=4, command_status=CommandStatus.ESME_RINVBNDSTS),
        ),
        (
            Role.ESME,
            QuerySm(sequence_number=4),
            GenericNack(sequence_number=4, command_status=CommandStatus.ESME_RINVCMDID),
        ),
    ],
)
def test_a_request_not_allowed_now_is_refused_with_its_own_response_and_the_link_carries_on(
    role: Role, request_pdu: Pdu, answer: Pdu
) -> None:
    """Section 2.3: a request before the bind is answered with its own response carrying
    ESME_RINVBNDSTS (generic_nack when it has none, or for a command the peer's role never
    sends), not a disconnection."""
    conn = SmppConnection(role)
    assert conn.receive_data(encode(request_pdu), 1.0) == [
        RequestRefused(request_pdu, answer.command_status)
    ]
    assert conn.data_to_send() == encode(answer)
    assert conn.state is State.OPEN


def test_an_unbind_from_the_peer_is_answered_and_the_rest_of_the_read_ignored() -> None:
    esme, _smsc = pair()
    data = encode(Unbind(sequence_number=9)) + encode(DeliverSm(sequence_number=10))
    assert esme.receive_data(data, 1.0) == [UnbindReceived(Unbind(sequence_number=9))]
    assert esme.data_to_send() == encode(UnbindResp(sequence_number=9))
    assert esme.state is State.CLOSED
    assert esme.receive_data(encode(DeliverSm(sequence_number=11)), 1.0) == []


def test_our_unbind_answered_closes_the_session_on_both_sides() -> None:
    esme, smsc = pair()
    [event] = smsc.receive_data(esme.send(Unbind(), 1.0), 1.0)
    assert event == UnbindReceived(Unbind(sequence_number=2))
    assert esme.receive_data(smsc.data_to_send(), 1.0) == [
        ResponseReceived(Unbind(), UnbindResp(sequence_number=2))
    ]
    assert esme.state is smsc.state is State.CLOSED


def test_a_response_of_the_wrong_command_for_its_sequence_number_ends_the_link() -> None:
    esme, _ = pair()
    esme.send(SubmitSm(destination_addr="1"), 1.0)
    [event] = esme.receive_data(encode(DeliverSmResp(sequence_number=2)), 1.0)
    assert isinstance(event, LinkDead)
    assert event.reason.startswith("broke the protocol: DeliverSmResp answers sequence 2")
    assert esme.state is State.CLOSED


def test_a_timed_out_request_is_reported_with_its_request_and_the_link_probed_at_once() -> None:
    esme, _smsc = pair()
    request = SubmitSm(destination_addr="1")
    esme.send(request, 1.0)
    assert esme.next_deadline() == 1.0 + RESPONSE
    assert esme.handle_timer(30.0) == []
    events = esme.handle_timer(1.0 + RESPONSE)
    assert events == [ResponseTimedOut(request, 2), EnquireLinkSent(after_timeout=True)]
    assert esme.data_to_send() == encode(EnquireLink(sequence_number=3))
    assert esme.probing
    # The peer answers the probe, then the late response: the link is alive, the request decided.
    late = SubmitSmResp(sequence_number=2, message_id="m")
    events = esme.receive_data(encode(EnquireLinkResp(sequence_number=3)) + encode(late), 40.0)
    assert events == [
        ResponseReceived(EnquireLink(), EnquireLinkResp(sequence_number=3)),
        LateResponse(late),
    ]
    assert not esme.probing


def test_a_frozen_peer_is_dead_one_response_timeout_after_the_probe() -> None:
    """The worst-case detection of connection.py holds: response timeout, then the probe's."""
    esme, _ = pair()
    request = SubmitSm(destination_addr="1")
    esme.send(request, 0.0)
    esme.handle_timer(RESPONSE)
    assert esme.next_deadline() == 2 * RESPONSE
    assert esme.handle_timer(2 * RESPONSE) == [
        LinkDead("enquire_link sent after a response timeout got no response either", frozen=True)
    ]
    assert esme.connection_lost() == []
    assert esme.state is State.CLOSED
    assert esme.handle_timer(1000.0) == []


def test_silence_from_the_peer_is_probed_and_an_idle_link_is_dead() -> None:
    esme, _ = pair(idle=100.0)
    assert esme.next_deadline() == ENQUIRE
    assert esme.handle_timer(ENQUIRE) == [EnquireLinkSent(after_timeout=False)]
    esme.receive_data(encode(EnquireLinkResp(sequence_number=2)), 70.0)
    esme.heard(80.0)
    assert esme.next_deadline() == 80.0 + ENQUIRE
    assert esme.handle_timer(180.0) == [LinkDead("nothing heard for 100.0 s", frozen=False)]


def test_without_a_response_timeout_a_request_waits_for_ever() -> None:
    esme, smsc = pair(response=None, idle=None)
    smsc.send(DeliverSm(short_message=b"r"), 0.0)
    assert smsc.next_deadline() is None
    esme.send(SubmitSm(destination_addr="1"), 0.0, timeout=5.0)
    assert esme.next_deadline() == 5.0


def test_a_lost_connection_hands_back_the_requests_still_awaiting_an_answer() -> None:
    esme, _ = pair()
    first, second = SubmitSm(destination_addr="1"), SubmitSm(destination_addr="2")
    esme.send(first, 0.0)
    esme.send(second, 0.0)
    esme.send(EnquireLink(), 0.0)
    assert esme.connection_lost() == [first, second]
    assert esme.state is State.CLOSED


def test_a_request_that_expects_no_response_is_not_awaited() -> None:
    _esme, smsc = pair()
    smsc.send(AlertNotification(source_addr="1", esme_addr="2"), 0.0)
    assert smsc.outstanding == 0
    assert smsc.connection_lost() == []


def test_the_window_holds_back_operations_but_never_the_enquire_link() -> None:
    esme, _ = pair(window=1)
    esme.send(SubmitSm(destination_addr="1"), 0.0)
    assert esme.window_full
    with pytest.raises(WindowFullError):
        esme.send(SubmitSm(destination_addr="2"), 0.0)
    esme.send(EnquireLink(), 0.0)
    assert esme.outstanding == 2


def test_sending_what_our_role_may_not_send_is_a_local_error() -> None:
    esme, _ = pair()
    assert esme.role is Role.ESME
    assert not esme.can_send(DeliverSm.command_id)
    assert esme.can_send(SubmitSm.command_id)
    with pytest.raises(LocalProtocolError):
        esme.send(DeliverSm(), 0.0)
    assert esme.state is State.CLOSED


def test_the_readme_example_of_the_sans_io_connection_runs() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("### The sans-IO connection", 1)[1]
    example = section.split("```python\n", 1)[1].split("```", 1)[0]
    exec(compile(example, "README.md", "exec"), {})  # noqa: S102 - the documented example
