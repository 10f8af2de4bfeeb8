"""The sans-IO session state machine: its table is total, and two peers back to back agree."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smppgw.codec import (
    AlertNotification,
    BindReceiver,
    BindReceiverResp,
    BindTransceiver,
    BindTransceiverResp,
    BindTransmitter,
    BindTransmitterResp,
    CommandId,
    CommandStatus,
    DataSm,
    DataSmResp,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    Outbind,
    Pdu,
    QuerySm,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    UnbindResp,
    pdu_class,
)
from smppgw.codec.connection import (
    MAX_SEQUENCE,
    TRANSITIONS,
    Connection,
    Input,
    LocalProtocolError,
    ProtocolError,
    RejectedRequestError,
    RemoteProtocolError,
    Role,
    State,
    WindowFullError,
)
from smppgw.codec.constants import EsmClass

BINDS: list[tuple[type[Pdu], type[Pdu], State]] = [
    (BindTransmitter, BindTransmitterResp, State.BOUND_TX),
    (BindReceiver, BindReceiverResp, State.BOUND_RX),
    (BindTransceiver, BindTransceiverResp, State.BOUND_TRX),
]
REQUESTS = [cls for cid in CommandId if (cls := pdu_class(cid)) is not None and not cls.is_response]


def bound(state: State = State.BOUND_TRX, *, window: int = 10) -> Connection:
    """An ESME connection in ``state`` whose first request gets sequence number 1."""
    conn = Connection(Role.ESME, window=window)
    conn.state = state
    return conn


def state_of(conn: Connection) -> State:
    """The state, read through a call so that mypy does not narrow it between steps."""
    return conn.state


# --- the table is total -------------------------------------------------------------------


@given(st.sampled_from(State), st.sampled_from(Input), st.booleans())
@settings(max_examples=500)
def test_every_state_and_input_is_a_transition_or_a_typed_error_and_closed(
    state: State, event: Input, local: bool
) -> None:
    conn = Connection()
    conn.state = state
    expected = TRANSITIONS.get((state, event))
    if expected is not None:
        assert conn.handle(event, local=local) is expected
        assert conn.state is expected
        return
    error = LocalProtocolError if local else RemoteProtocolError
    with pytest.raises(error) as info:
        conn.handle(event, local=local)
    assert type(info.value) is error
    assert conn.state is State.CLOSED


def test_the_property_covers_every_pair() -> None:
    """Hypothesis samples; this walks the whole product once, so no pair is left to luck."""
    for state, event in itertools.product(State, Input):
        conn = Connection()
        conn.state = state
        try:
            new = conn.handle(event, local=False)
        except RemoteProtocolError:
            assert (state, event) not in TRANSITIONS
            assert conn.state is State.CLOSED
        else:
            assert new is TRANSITIONS[state, event]


@given(st.lists(st.sampled_from(Input), max_size=30))
def test_a_run_of_inputs_follows_the_table_until_the_first_illegal_one(
    events: list[Input],
) -> None:
    conn = Connection()
    state = State.OPEN
    for event in events:
        if (state, event) not in TRANSITIONS:
            with pytest.raises(RemoteProtocolError):
                conn.handle(event, local=False)
            assert conn.state is State.CLOSED
            return
        state = TRANSITIONS[state, event]
        assert conn.handle(event, local=False) is state


def test_connection_lost_closes_from_every_state_and_forgets_outstanding() -> None:
    for state in State:
        conn = bound()
        conn.send_request(CommandId.ENQUIRE_LINK, 0.0, 1.0)
        conn.state = state
        conn.connection_lost()
        assert (conn.state, conn.outstanding, conn.next_deadline()) == (State.CLOSED, 0, None)


@given(st.sampled_from(State), st.sampled_from(REQUESTS), st.sampled_from(Role))
def test_a_request_from_the_peer_follows_the_table_or_is_rejected_without_a_state_change(
    state: State, cls: type[Pdu], role: Role
) -> None:
    conn = Connection(role)
    conn.state = state
    rejected: CommandStatus | None = None
    event: Input | None = None
    try:
        event = conn.receive(cls(sequence_number=7))
    except RejectedRequestError as exc:
        rejected = exc.status
    if rejected is not None:
        assert rejected in {CommandStatus.ESME_RINVBNDSTS, CommandStatus.ESME_RINVCMDID}
        assert conn.state is state
    else:
        assert event is not None
        assert conn.state is TRANSITIONS[state, event]


# --- binding ------------------------------------------------------------------------------


@pytest.mark.parametrize(("request_cls", "resp_cls", "bound_state"), BINDS)
def test_bind_then_its_ok_response_binds(
    request_cls: type[Pdu], resp_cls: type[Pdu], bound_state: State
) -> None:
    conn = Connection(Role.ESME)
    assert conn.send(request_cls(), now=0.0, timeout=10.0) == 1
    assert conn.state.name == bound_state.name.replace("BOUND", "BINDING")
    assert not conn.bound
    assert conn.receive(resp_cls(sequence_number=1)) is Input.BIND_OK
    assert conn.state is bound_state
    assert conn.bound
    assert conn.outstanding == 0
    assert conn.can_send(CommandId.SUBMIT_SM) is (bound_state is not State.BOUND_RX)


def test_refused_bind_goes_back_to_open() -> None:
    conn = Connection()
    seq = conn.send_request(CommandId.BIND_TRANSCEIVER, 0.0, 10.0)
    resp = BindTransceiverResp(sequence_number=seq, command_status=CommandStatus.ESME_RINVPASWD)
    assert conn.receive(resp) is Input.BIND_FAILED
    assert conn.state is State.OPEN
    # ... and may bind again.
    conn.send_request(CommandId.BIND_TRANSCEIVER, 0.0, 10.0)
    assert state_of(conn) is State.BINDING_TRX


def test_generic_nack_to_a_bind_is_a_failed_bind() -> None:
    conn = Connection()
    seq = conn.send_request(CommandId.BIND_TRANSMITTER, 0.0, 10.0)
    nack = GenericNack(sequence_number=seq, command_status=CommandStatus.ESME_RINVCMDID)
    assert conn.receive(nack) is Input.BIND_FAILED
    assert conn.state is State.OPEN


def test_submit_before_bind_is_a_local_error() -> None:
    conn = Connection()
    assert not conn.can_send(CommandId.SUBMIT_SM)
    with pytest.raises(LocalProtocolError, match="not allowed in state open"):
        conn.send(SubmitSm())
    assert conn.state is State.CLOSED


def test_submit_on_a_receiver_bind_is_a_local_error() -> None:
    conn = bound(State.BOUND_RX)
    with pytest.raises(LocalProtocolError):
        conn.send_request(CommandId.DATA_SM, 0.0, 1.0)
    assert conn.state is State.CLOSED


@pytest.mark.parametrize(
    "pdu",
    [DeliverSm(), AlertNotification(), Outbind(), BindTransmitterResp()],
    ids=lambda p: type(p).__name__,
)
def test_an_esme_never_sends_smsc_pdus(pdu: Pdu) -> None:
    conn = bound()
    with pytest.raises(LocalProtocolError, match="ESME"):
        conn.send(pdu)
    assert conn.state is State.CLOSED


# --- unbinding ----------------------------------------------------------------------------


def test_our_unbind_closes_on_its_response() -> None:
    conn = bound()
    seq = conn.send(Unbind(), now=0.0, timeout=5.0)
    assert conn.state is State.UNBINDING
    assert not conn.bound
    assert not conn.can_send(CommandId.SUBMIT_SM)
    assert conn.receive(UnbindResp(sequence_number=seq)) is Input.UNBIND_RESP
    assert state_of(conn) is State.CLOSED


def test_their_unbind_closes_once_we_answer() -> None:
    conn = bound()
    assert conn.receive(Unbind(sequence_number=40)) is Input.UNBIND
    assert conn.state is State.UNBINDING
    conn.send(UnbindResp(sequence_number=40))
    assert state_of(conn) is State.CLOSED


def test_crossing_unbinds_close_on_the_first_unbind_resp() -> None:
    conn = bound()
    seq = conn.send_request(CommandId.UNBIND, 0.0, 5.0)
    assert conn.receive(Unbind(sequence_number=9)) is Input.UNBIND
    assert conn.state is State.UNBINDING
    conn.receive(UnbindResp(sequence_number=seq))
    assert state_of(conn) is State.CLOSED


def test_responses_still_arrive_while_unbinding() -> None:
    conn = bound()
    submit = conn.send_request(CommandId.SUBMIT_SM, 0.0, 5.0)
    conn.send_request(CommandId.UNBIND, 0.0, 5.0)
    assert conn.receive(SubmitSmResp(sequence_number=submit)) is Input.RESPONSE
    assert conn.state is State.UNBINDING


# --- requests from the peer ---------------------------------------------------------------


def test_deliver_sm_on_a_transmitter_bind_is_rejected_with_invbndsts() -> None:
    """Section 2.3: the request is answered with an error and the bind carries on."""
    conn = bound(State.BOUND_TX)
    with pytest.raises(RejectedRequestError) as info:
        conn.receive(DeliverSm(sequence_number=3))
    assert info.value.status is CommandStatus.ESME_RINVBNDSTS
    assert conn.state is State.BOUND_TX


def test_smsc_only_pdus_sent_to_an_smsc_are_rejected_with_invcmdid() -> None:
    smsc = Connection(Role.SMSC)
    smsc.state = State.BOUND_TRX
    with pytest.raises(RejectedRequestError) as info:
        smsc.receive(DeliverSm(sequence_number=3))
    assert info.value.status is CommandStatus.ESME_RINVCMDID
    assert smsc.state is State.BOUND_TRX


def test_esme_only_pdus_sent_to_an_esme_are_rejected_with_invcmdid() -> None:
    conn = bound()
    for pdu in (SubmitSm(sequence_number=2), BindTransmitter(sequence_number=2)):
        with pytest.raises(RejectedRequestError) as info:
            conn.receive(pdu)
        assert info.value.status is CommandStatus.ESME_RINVCMDID
    assert conn.state is State.BOUND_TRX


@pytest.mark.parametrize("state", [State.BOUND_RX, State.BOUND_TRX])
def test_deliver_sm_data_sm_and_alerts_reach_a_receiver(state: State) -> None:
    conn = bound(state)
    for pdu in (DeliverSm(sequence_number=1), DataSm(sequence_number=2), AlertNotification()):
        assert conn.receive(pdu) is Input.DELIVER
        conn.send(DeliverSmResp(sequence_number=1))
    assert conn.state is state


def test_enquire_link_is_legal_in_every_live_state() -> None:
    for state in set(State) - {State.CLOSED}:
        conn = bound(state)
        assert conn.receive(EnquireLink(sequence_number=5)) is Input.ENQUIRE_LINK
        conn.send(EnquireLinkResp(sequence_number=5))
        assert conn.state is state
        seq = conn.send(EnquireLink(), now=0.0, timeout=1.0)
        assert conn.receive(EnquireLinkResp(sequence_number=seq)) is Input.RESPONSE


# --- responses ----------------------------------------------------------------------------


def test_a_response_for_an_unknown_sequence_is_ignored() -> None:
    """A late response (its request timed out) must not kill the bind: it is dropped."""
    conn = bound()
    conn.send_request(CommandId.SUBMIT_SM, 0.0, 5.0)
    assert conn.receive(SubmitSmResp(sequence_number=99)) is None
    assert (conn.state, conn.outstanding) == (State.BOUND_TRX, 1)


def test_a_response_of_the_wrong_command_is_a_remote_error() -> None:
    conn = bound()
    seq = conn.send_request(CommandId.SUBMIT_SM, 0.0, 5.0)
    with pytest.raises(RemoteProtocolError) as info:
        conn.receive(DataSmResp(sequence_number=seq))
    assert info.value.status is CommandStatus.ESME_RINVCMDID
    assert (conn.state, conn.outstanding) == (State.CLOSED, 0)


def test_generic_nack_answers_any_request() -> None:
    conn = bound()
    seq = conn.send(QuerySm(), now=0.0, timeout=5.0)
    assert conn.awaiting(seq) == CommandId.QUERY_SM_RESP
    nack = GenericNack(sequence_number=seq, command_status=CommandStatus.ESME_RINVCMDID)
    assert conn.receive(nack) is Input.RESPONSE
    assert conn.awaiting(seq) is None
    assert conn.state is State.BOUND_TRX


def test_an_esme_never_sends_a_bind_response() -> None:
    conn = Connection()
    with pytest.raises(LocalProtocolError):
        conn.send_response(CommandId.BIND_TRANSMITTER_RESP)
    assert conn.state is State.CLOSED


def test_nothing_is_sent_once_closed() -> None:
    conn = bound()
    conn.connection_lost()
    with pytest.raises(LocalProtocolError):
        conn.send(DeliverSmResp(sequence_number=1))
    conn = bound()
    conn.connection_lost()
    with pytest.raises(LocalProtocolError):
        conn.send(EnquireLink(), now=0.0, timeout=1.0)


# --- sequence numbers ---------------------------------------------------------------------


def test_sequence_numbers_count_up_from_one() -> None:
    conn = bound()
    assert [conn.send_request(CommandId.ENQUIRE_LINK, 0.0, 1.0) for _ in range(3)] == [1, 2, 3]
    assert conn.last_sequence == 3


def test_sequence_numbers_wrap_from_0x7fffffff_to_1() -> None:
    conn = Connection(last_sequence=MAX_SEQUENCE - 1)
    conn.state = State.BOUND_TRX
    first = conn.send_request(CommandId.SUBMIT_SM, 0.0, 1.0)
    second = conn.send_request(CommandId.SUBMIT_SM, 0.0, 1.0)
    assert (first, second) == (0x7FFFFFFF, 1)


def test_a_wrapped_sequence_skips_numbers_still_outstanding() -> None:
    conn = bound()
    held = [conn.send_request(CommandId.SUBMIT_SM, 0.0, 1.0) for _ in range(3)]
    conn.receive(SubmitSmResp(sequence_number=2))
    # Jump the counter to the end of the range, as 2**31 - 4 requests later.
    conn._sequence = MAX_SEQUENCE - 1  # the alternative: 2**31 requests
    wrapped = [conn.send_request(CommandId.SUBMIT_SM, 0.0, 1.0) for _ in range(3)]
    assert (held, wrapped) == ([1, 2, 3], [MAX_SEQUENCE, 2, 4])


@given(st.integers(0, MAX_SEQUENCE), st.integers(1, 50))
def test_sequence_numbers_stay_in_range(last: int, count: int) -> None:
    conn = Connection(last_sequence=last, window=count)
    conn.state = State.BOUND_TRX
    seqs = [conn.send_request(CommandId.SUBMIT_SM, 0.0, 1.0) for _ in range(count)]
    assert all(1 <= s <= MAX_SEQUENCE for s in seqs)
    assert len(set(seqs)) == count


# --- the window ---------------------------------------------------------------------------


def test_a_full_window_refuses_operations_but_not_control_requests() -> None:
    conn = bound(window=2)
    a = conn.send_request(CommandId.SUBMIT_SM, 0.0, 1.0)
    conn.send_request(CommandId.DATA_SM, 0.0, 1.0)
    assert (conn.window_free, conn.window_full) == (0, True)
    with pytest.raises(WindowFullError):
        conn.send_request(CommandId.SUBMIT_SM, 0.0, 1.0)
    assert (conn.state, conn.outstanding, conn.last_sequence) == (State.BOUND_TRX, 2, 2)
    # The link can still be probed and closed.
    conn.send_request(CommandId.ENQUIRE_LINK, 0.0, 1.0)
    assert conn.outstanding == 3
    conn.receive(SubmitSmResp(sequence_number=a))
    assert conn.window_full
    conn.receive(EnquireLinkResp(sequence_number=3))
    assert (conn.window_free, conn.window_full) == (1, False)
    conn.send_request(CommandId.SUBMIT_SM, 0.0, 1.0)


def test_which_response_each_sequence_awaits() -> None:
    conn = bound()
    s1 = conn.send(SubmitSm(), now=0.0, timeout=1.0)
    s2 = conn.send(DataSm(), now=0.0, timeout=1.0)
    s3 = conn.send(EnquireLink(), now=0.0, timeout=1.0)
    assert [conn.awaiting(s) for s in (s1, s2, s3, 99)] == [
        CommandId.SUBMIT_SM_RESP,
        CommandId.DATA_SM_RESP,
        CommandId.ENQUIRE_LINK_RESP,
        None,
    ]


# --- deadlines ----------------------------------------------------------------------------


def test_deadlines_come_from_the_injected_clock() -> None:
    conn = bound()
    assert conn.next_deadline() is None
    slow = conn.send_request(CommandId.SUBMIT_SM, 100.0, 30.0)
    fast = conn.send_request(CommandId.ENQUIRE_LINK, 105.0, 10.0)
    assert conn.next_deadline() == 115.0
    assert conn.expired(114.9) == []
    assert conn.expired(115.0) == [fast]
    assert conn.next_deadline() == 130.0
    # The response to the expired request comes late: ignored.
    assert conn.receive(EnquireLinkResp(sequence_number=fast)) is None
    assert conn.receive(SubmitSmResp(sequence_number=slow)) is Input.RESPONSE
    assert conn.next_deadline() is None
    assert conn.state is State.BOUND_TRX


def test_expired_returns_every_late_request_oldest_first() -> None:
    conn = bound()
    seqs = [conn.send_request(CommandId.SUBMIT_SM, float(t), 5.0) for t in range(4)]
    assert conn.expired(1000.0) == seqs
    assert conn.outstanding == 0


# --- two peers back to back ---------------------------------------------------------------


class Pair:
    """An ESME and an SMSC connection with a perfect wire between them."""

    def __init__(self) -> None:
        self.esme = Connection(Role.ESME, window=1000)
        self.smsc = Connection(Role.SMSC, window=1000)
        self.now = 0.0

    def request(self, sender: Connection, pdu: Pdu) -> Input | None:
        """``sender`` sends ``pdu``; the other end receives it."""
        receiver = self.smsc if sender is self.esme else self.esme
        seq = sender.send(pdu, now=self.now, timeout=30.0)
        return receiver.receive(dataclasses.replace(pdu, sequence_number=seq))

    def answer(self, responder: Connection, resp: Pdu) -> Input | None:
        requester = self.smsc if responder is self.esme else self.esme
        responder.send(resp)
        return requester.receive(resp)

    def exchange(
        self,
        sender: Connection,
        pdu: Pdu,
        resp_cls: type[Pdu],
        status: CommandStatus = CommandStatus.ESME_ROK,
    ) -> None:
        responder = self.smsc if sender is self.esme else self.esme
        self.request(sender, pdu)
        seq = sender.last_sequence
        self.answer(responder, resp_cls(sequence_number=seq, command_status=status))
        assert self.esme.state is self.smsc.state


def test_two_peers_bind_exchange_and_unbind_in_step() -> None:
    pair = Pair()
    esme, smsc = pair.esme, pair.smsc
    assert pair.request(esme, BindTransceiver(system_id="acme")) is Input.BIND_TRX
    assert state_of(esme) is state_of(smsc) is State.BINDING_TRX
    pair.answer(smsc, BindTransceiverResp(sequence_number=1, system_id="SMSC"))
    assert state_of(esme) is state_of(smsc) is State.BOUND_TRX
    pair.exchange(esme, SubmitSm(short_message=b"hi"), SubmitSmResp)
    pair.exchange(smsc, DeliverSm(esm_class=EsmClass.DELIVERY_RECEIPT), DeliverSmResp)
    pair.exchange(smsc, EnquireLink(), EnquireLinkResp)
    pair.exchange(esme, EnquireLink(), EnquireLinkResp)
    pair.exchange(esme, DataSm(), DataSmResp)
    assert esme.outstanding == smsc.outstanding == 0
    assert pair.request(smsc, Unbind()) is Input.UNBIND
    assert state_of(esme) is state_of(smsc) is State.UNBINDING
    assert pair.answer(esme, UnbindResp(sequence_number=smsc.last_sequence)) is Input.UNBIND_RESP
    assert state_of(esme) is state_of(smsc) is State.CLOSED


def test_two_peers_agree_when_the_smsc_refuses_the_bind() -> None:
    pair = Pair()
    pair.exchange(
        pair.esme,
        BindTransmitter(),
        BindTransmitterResp,
        CommandStatus.ESME_RBINDFAIL,
    )
    assert pair.esme.state is pair.smsc.state is State.OPEN


# One step of a session: who sends what, and what the other side answers it with.
STEPS: list[tuple[Role, Pdu, type[Pdu]]] = [
    (Role.ESME, BindTransmitter(), BindTransmitterResp),
    (Role.ESME, BindReceiver(), BindReceiverResp),
    (Role.ESME, BindTransceiver(), BindTransceiverResp),
    (Role.ESME, SubmitSm(), SubmitSmResp),
    (Role.ESME, DataSm(), DataSmResp),
    (Role.SMSC, DeliverSm(), DeliverSmResp),
    (Role.SMSC, DataSm(), DataSmResp),
    (Role.ESME, EnquireLink(), EnquireLinkResp),
    (Role.SMSC, EnquireLink(), EnquireLinkResp),
    (Role.ESME, Unbind(), UnbindResp),
    (Role.SMSC, Unbind(), UnbindResp),
]


@given(
    st.lists(
        st.tuples(
            st.sampled_from(STEPS),
            st.sampled_from([CommandStatus.ESME_ROK, CommandStatus.ESME_RBINDFAIL]),
        ),
        max_size=25,
    )
)
def test_two_peers_stay_in_the_same_state_whatever_they_do(
    steps: list[tuple[tuple[Role, Pdu, type[Pdu]], CommandStatus]],
) -> None:
    pair = Pair()
    for (role, pdu, resp_cls), status in steps:
        sender = pair.esme if role is Role.ESME else pair.smsc
        receiver = pair.smsc if role is Role.ESME else pair.esme
        if not sender.can_send(pdu.command_id):
            continue  # a well-behaved peer does not try; the local error is tested above
        # In the same state, what one side may send the other may receive: never rejected.
        assert pair.request(sender, pdu) is not None
        pair.answer(receiver, resp_cls(sequence_number=sender.last_sequence, command_status=status))
        assert pair.esme.state is pair.smsc.state
        assert pair.esme.outstanding == pair.smsc.outstanding == 0
        if pair.esme.state is State.CLOSED:
            return


def test_protocol_errors_are_smpp_errors_with_a_status() -> None:
    conn = Connection()
    with pytest.raises(ProtocolError) as info:
        conn.handle(Input.SUBMIT, local=True)
    assert info.value.status is CommandStatus.ESME_RINVBNDSTS
