"""The connection's link timers on a fake clock: enquire_link on silence from the peer, a
response timeout probes the link, an unanswered probe is a dead (frozen) link."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from smppgw.codec import CommandId, EnquireLinkResp, SubmitSmResp
from smppgw.codec.connection import (
    Connection,
    LinkDead,
    RequestTimedOut,
    Role,
    SendEnquireLink,
    State,
)

ENQUIRE = 60.0
RESPONSE = 30.0


def bound_at(now: float, *, idle: float | None = 300.0) -> Connection:
    conn = Connection(Role.ESME, window=10, enquire_link_interval=ENQUIRE, idle_timeout=idle)
    conn.state = State.BOUND_TRX
    conn.heard(now)
    return conn


def probe(conn: Connection, now: float) -> int:
    return conn.send_request(CommandId.ENQUIRE_LINK, now, RESPONSE)


def test_enquire_link_is_due_after_silence_from_the_peer_however_much_we_send() -> None:
    """enquire_link used to be scheduled from the last PDU *sent*: a stream of submits to a peer
    that answered nothing postponed it for ever, and the link was never found dead. What we
    send does not count: 60 s without a word from the peer is what is due."""
    conn = bound_at(0.0)
    for t in range(1, 60):
        conn.send_request(CommandId.SUBMIT_SM, float(t), 1000.0)  # answered by nothing
        if conn.window_full:
            conn.expired(2000.0)
    assert conn.next_deadline() == ENQUIRE
    assert conn.handle_timer(59.9) == []
    assert conn.handle_timer(ENQUIRE) == [SendEnquireLink(after_timeout=False)]


def test_hearing_from_the_peer_postpones_the_enquire_link() -> None:
    conn = bound_at(0.0)
    conn.heard(45.0)
    assert conn.next_deadline() == 45.0 + ENQUIRE
    assert conn.handle_timer(ENQUIRE) == []


def test_no_enquire_link_before_the_bind_nor_while_one_is_outstanding() -> None:
    conn = Connection(Role.ESME, enquire_link_interval=ENQUIRE)
    conn.heard(0.0)
    assert conn.next_deadline() is None  # not bound: nothing to probe yet
    assert conn.handle_timer(100.0) == []
    conn.state = State.BOUND_TRX
    seq = probe(conn, 100.0)
    assert conn.probing
    assert conn.next_deadline() == 100.0 + RESPONSE  # the probe's deadline, not another probe
    assert conn.receive(EnquireLinkResp(sequence_number=seq)) is not None
    assert not conn.probing


def test_a_response_timeout_probes_the_link_at_once() -> None:
    """A response that does not come used to count against nothing: the submit was reported
    unknown and the link went on. Now it is followed by an enquire_link at once."""
    conn = bound_at(0.0)
    seq = conn.send_request(CommandId.SUBMIT_SM, 1.0, RESPONSE)
    assert conn.next_deadline() == 1.0 + RESPONSE
    assert conn.handle_timer(1.0 + RESPONSE) == [
        RequestTimedOut(seq),
        SendEnquireLink(after_timeout=True),
    ]


def test_a_probe_answered_after_a_timeout_keeps_the_link() -> None:
    conn = bound_at(0.0)
    conn.send_request(CommandId.SUBMIT_SM, 1.0, RESPONSE)
    conn.handle_timer(31.0)
    seq = probe(conn, 31.0)
    conn.heard(31.5)
    conn.receive(EnquireLinkResp(sequence_number=seq))
    assert conn.handle_timer(61.0) == []
    assert conn.next_deadline() == 31.5 + ENQUIRE


def test_an_unanswered_probe_after_a_timeout_is_a_frozen_link() -> None:
    conn = bound_at(0.0)
    conn.send_request(CommandId.SUBMIT_SM, 1.0, RESPONSE)
    conn.handle_timer(31.0)
    probe(conn, 31.0)
    [dead] = conn.handle_timer(61.0)
    assert isinstance(dead, LinkDead)
    assert dead.frozen
    assert "after a response timeout" in dead.reason


def test_an_unanswered_routine_probe_is_a_dead_link_not_called_frozen() -> None:
    conn = bound_at(0.0)
    assert conn.handle_timer(ENQUIRE) == [SendEnquireLink(after_timeout=False)]
    probe(conn, ENQUIRE)
    [dead] = conn.handle_timer(ENQUIRE + RESPONSE)
    assert dead == LinkDead("enquire_link got no response", frozen=False)


def test_requests_timing_out_behind_a_routine_probe_make_its_failure_a_freeze() -> None:
    conn = bound_at(0.0)
    seq = conn.send_request(CommandId.SUBMIT_SM, 50.0, RESPONSE)
    conn.handle_timer(ENQUIRE)
    probe(conn, ENQUIRE)
    assert conn.handle_timer(80.0) == [RequestTimedOut(seq)]  # already probing: no second one
    [dead] = conn.handle_timer(ENQUIRE + RESPONSE)
    assert isinstance(dead, LinkDead)
    assert dead.frozen


def test_silence_for_idle_timeout_is_a_dead_link() -> None:
    conn = Connection(Role.ESME, idle_timeout=300.0)
    conn.heard(0.0)
    assert conn.next_deadline() == 300.0
    [dead] = conn.handle_timer(300.0)
    assert isinstance(dead, LinkDead)
    assert not dead.frozen


def test_a_late_response_after_its_timeout_is_ignored_and_does_not_clear_the_probe() -> None:
    conn = bound_at(0.0)
    seq = conn.send_request(CommandId.SUBMIT_SM, 0.0, RESPONSE)
    conn.handle_timer(RESPONSE)
    probe(conn, RESPONSE)
    assert conn.receive(SubmitSmResp(sequence_number=seq, message_id="late")) is None
    assert conn.probing


@settings(max_examples=200, deadline=None)
@given(
    sends=st.lists(st.floats(min_value=0.0, max_value=500.0), max_size=40),
    freeze=st.floats(min_value=0.0, max_value=200.0),
    enquire=st.floats(min_value=1.0, max_value=120.0),
    response=st.floats(min_value=1.0, max_value=60.0),
)
def test_a_frozen_peer_is_found_dead_within_the_documented_bound(
    sends: list[float], freeze: float, enquire: float, response: float
) -> None:
    """The peer answers everything at once until ``freeze``, then nothing; we send submits
    whenever we like. Driven as an owner would (timer at next_deadline, probe when asked), the
    link is declared dead by min(last heard + enquire_link_interval, first unanswered request
    + response_timeout) + response_timeout: so at most enquire + response after the freeze,
    and response + response after the first unanswered submit."""
    conn = Connection(Role.ESME, window=1000, enquire_link_interval=enquire, idle_timeout=None)
    conn.state = State.BOUND_TRX
    conn.heard(0.0)
    heard = 0.0
    first_unanswered: float | None = None
    pending = sorted(sends)
    now = 0.0
    for _ in range(10_000):
        deadline = conn.next_deadline()
        assert deadline is not None  # bound and not dead: something is always due
        if pending and pending[0] <= deadline:
            now = max(now, pending.pop(0))
            seq = conn.send_request(CommandId.SUBMIT_SM, now, response)
            if now < freeze:
                conn.heard(now)
                heard = now
                conn.receive(SubmitSmResp(sequence_number=seq, message_id="x"))
            elif first_unanswered is None:
                first_unanswered = now
            continue
        now = max(now, deadline)
        for event in conn.handle_timer(now):
            if isinstance(event, SendEnquireLink):
                seq = conn.send_request(CommandId.ENQUIRE_LINK, now, response)
                if now < freeze:
                    conn.heard(now)
                    heard = now
                    conn.receive(EnquireLinkResp(sequence_number=seq))
            elif isinstance(event, LinkDead):
                assert now >= freeze
                quiet = heard + enquire
                timed_out = math.inf if first_unanswered is None else first_unanswered + response
                assert now <= min(quiet, timed_out) + response + 1e-6
                assert now - freeze <= enquire + response + 1e-6
                return
    raise AssertionError("the frozen link was never declared dead")


def test_a_request_without_a_response_sets_no_deadline_and_is_no_probe() -> None:
    smsc = Connection(Role.SMSC, enquire_link_interval=ENQUIRE)
    smsc.state = State.BOUND_RX
    smsc.heard(0.0)
    smsc.send_request(CommandId.ALERT_NOTIFICATION, 1.0, RESPONSE)
    assert (smsc.outstanding, smsc.probing) == (0, False)
    assert smsc.next_deadline() == ENQUIRE
