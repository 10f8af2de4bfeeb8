"""alert_notification is the one request with no response (SMPP v3.4 section 4.12.1): an SMSC
that sends one gives it a sequence number and then awaits nothing, so it holds no place in the
window and sets no response deadline."""

from __future__ import annotations

from smppgw.codec import AlertNotification, DeliverSm
from smppgw.codec.connection import Connection, Role, State


def test_an_alert_notification_awaits_no_response_and_leaves_the_window_free() -> None:
    smsc = Connection(Role.SMSC, window=1)
    smsc.state = State.BOUND_RX
    seq = smsc.send(AlertNotification(source_addr="919876543210"), now=10.0, timeout=5.0)
    assert seq == 1
    assert smsc.awaiting(seq) is None
    assert smsc.outstanding == 0
    assert smsc.window_free == 1
    assert smsc.next_deadline() is None
    assert smsc.state is State.BOUND_RX
    # The one place in the window is still there for a deliver_sm, which does await its answer.
    deliver = smsc.send(DeliverSm(), now=10.0, timeout=5.0)
    assert deliver == 2
    assert smsc.outstanding == 1
    assert smsc.next_deadline() == 15.0
