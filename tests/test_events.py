"""Events in the provider's webhook shape: encoding, decoding, and the stream line."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smppgw.gateway.events import (
    DeliveryState,
    EventDecodeError,
    EventType,
    InboundEvent,
    InboundPayload,
    PartPayload,
    StatusEvent,
    StatusPayload,
    decode_event,
    encode_event,
    format_time,
    stream_line,
)

# The provider's "Receive DLR Updates" example (document lines 9880-9905), the keys we fill.
PROVIDER_KEYS = {
    "id",
    "mobile",
    "status",
    "units",
    "deliv_time",
    "sent_time",
    "submit_time",
    "cid",
    "custom",
}


def delivered() -> StatusEvent:
    return StatusEvent(
        StatusPayload(
            id="b34e35ad-fe34-4a8b-977c-b21cd76cd7d6",
            mobile="918921269000",
            status="DELIVRD",
            state=DeliveryState.DELIVERED,
            final=True,
            units=2,
            submit_time=format_time(1617985655),
            sent_time=format_time(1617985659),
            deliv_time=format_time(1617985671),
            custom="9882",
            cid="9882",
            err="000",
            parts=(
                PartPayload(part=1, smsc_id="a1", status="DELIVRD", err="000"),
                PartPayload(part=2, smsc_id="a2", status="DELIVRD", err="000"),
            ),
        )
    )


def test_status_event_has_the_provider_webhook_shape() -> None:
    body = json.loads(encode_event(delivered()))
    assert body["event"] == "sms:message:status"
    assert set(body) == {"event", "payload"}
    payload = body["payload"]
    assert set(payload) >= PROVIDER_KEYS
    assert payload["mobile"] == "918921269000"
    assert payload["units"] == 2
    assert payload["submit_time"] == "2021-04-09 16:27:35"
    assert payload["deliv_time"] == "2021-04-09 16:27:51"
    assert payload["state"] == "delivered"
    assert payload["parts"][1] == {"part": 2, "smsc_id": "a2", "status": "DELIVRD", "err": "000"}


def test_inbound_event_uses_from_and_to() -> None:
    event = InboundEvent(
        InboundPayload(
            id="mo-1",
            from_="14155550101",
            to="56789",
            text="STOP",
            received_time="2024-01-02 03:04:05",
            server="smpp2",
        )
    )
    body = json.loads(encode_event(event))
    assert body == {
        "event": "sms:message:in",
        "payload": {
            "id": "mo-1",
            "from": "14155550101",
            "to": "56789",
            "text": "STOP",
            "hex": None,
            "coding": 0,
            "parts": 1,
            "received_time": "2024-01-02 03:04:05",
            "server": "smpp2",
            "complete": True,
            "missing": [],
        },
    }
    assert event.type is EventType.MESSAGE_IN
    assert decode_event(encode_event(event)) == event


def test_decode_round_trips_a_status_event() -> None:
    event = delivered()
    decoded = decode_event(encode_event(event))
    assert decoded == event
    assert decoded.type is EventType.MESSAGE_STATUS


@pytest.mark.parametrize(
    "body",
    [b"", b"{", b'{"event":"sms:unknown","payload":{}}', b'{"payload":{}}', b"[]"],
)
def test_decode_refuses_what_is_not_a_known_event(body: bytes) -> None:
    with pytest.raises(EventDecodeError, match="not an event"):
        decode_event(body)


def test_stream_line_splices_the_cursor_into_the_stored_body() -> None:
    body = encode_event(delivered())
    line = stream_line(42, body)
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    assert json.loads(line) == {"cursor": 42, **json.loads(body)}


@pytest.mark.parametrize("body", [b"", b"{}", b"[1]", b" {}"])
def test_stream_line_refuses_bodies_that_are_not_objects(body: bytes) -> None:
    with pytest.raises(ValueError, match="non-empty JSON object"):
        stream_line(1, body)


def test_format_time_is_utc_in_the_provider_format() -> None:
    assert format_time(0) == "1970-01-01 00:00:00"
    assert format_time(1617985671.9) == "2021-04-09 16:27:51"
    assert format_time(None) is None


def test_final_states() -> None:
    assert {s for s in DeliveryState if s.is_final} == {
        DeliveryState.SENT,
        DeliveryState.DELIVERED,
        DeliveryState.FAILED,
        DeliveryState.EXPIRED,
        DeliveryState.REJECTED,
        DeliveryState.UNKNOWN,
        DeliveryState.CANCELLED,
    }


texts = st.text(max_size=30)
optional = st.none() | texts


@st.composite
def status_events(draw: st.DrawFn) -> StatusEvent:
    state = draw(st.sampled_from(DeliveryState))
    custom = draw(optional)
    return StatusEvent(
        StatusPayload(
            id=draw(texts),
            mobile=draw(texts),
            status=draw(texts),
            state=state,
            final=state.is_final,
            units=draw(st.integers(0, 255)),
            submit_time=draw(optional),
            custom=custom,
            cid=custom,
            err=draw(optional),
            parts=tuple(
                draw(
                    st.lists(
                        st.builds(PartPayload, part=st.integers(1, 255), smsc_id=optional),
                        max_size=3,
                    )
                )
            ),
        )
    )


@given(status_events(), st.integers(0, 2**63 - 1))
def test_any_status_event_survives_encode_stream_decode(event: StatusEvent, cursor: int) -> None:
    body = encode_event(event)
    assert decode_event(body) == event
    line = json.loads(stream_line(cursor, body))
    assert line.pop("cursor") == cursor
    assert decode_event(json.dumps(line).encode()) == event
