"""The events of the cross-client tests (tests/cross_client_python.rs), as deterministic
functions of their index `i`: what the official client sends (xsend.py) and what it must read
back when our client sent them (xread.py). The Rust test mirrors every function here; the two
must change together.

Every event carries application properties of each AMQP type the official client can put on
the wire (the exotic ones through pyamqp's typed-value convention, see `props_sent`), and some
carry a message-id / correlation-id of each of the four id types, all other `properties`
fields, a `header`, custom message annotations, or a body that is not one data section.
"""

import datetime
import decimal
import uuid

from azure.eventhub import EventData
from azure.eventhub.amqp import AmqpAnnotatedMessage, AmqpMessageBodyType, AmqpMessageHeader, AmqpMessageProperties

# The official client has no public way to pick an integer width, a float32 or a symbol: its
# encoder maps Python int to AMQP int (and fails beyond 32 bits). Its encoder does honour
# {"TYPE": ..., "VALUE": ...} values, which is how the client itself sends typed fields.
from azure.eventhub._pyamqp.types import TYPE, VALUE, AMQPTypes

MODES = (("single", 0, 200), ("list", 200, 400), ("batch", 400, 600), ("key", 600, 800), ("pid", 800, 1000))
TOTAL = 1000
CHUNK = 20  # events per list/batch; a chunk shares its partition key or partition id
KEYS = 5
CONTENT_TYPE = "application/x-cross-client"
BIG = 300_000  # larger than one frame either way
EPOCH_2024_MS = 1_704_067_200_000


def mode_of(i):
    for name, lo, hi in MODES:
        if lo <= i < hi:
            return name
    raise ValueError(f"index {i} outside every mode")


def key_of(i):
    return f"xkey-ü{(i // CHUNK) % KEYS}" if mode_of(i) == "key" else None


def pid_of(i, partition_count):
    return str((i // CHUNK) % partition_count) if mode_of(i) == "pid" else None


def chunk_style(start):
    """How the chunk starting at `start` is sent in the key and pid modes."""
    lo = next(lo for _, lo, hi in MODES if lo <= start < hi)
    return ("batch", "list", "singles")[((start - lo) // CHUNK) % 3]


def body_of(i):
    """(kind, body): kind is "data" (one section), "multi" (several), "value" or "sequence"."""
    if i % 200 == 102:
        return "data", bytes((i + 13 * k) % 256 for k in range(BIG))
    r = i % 50
    if r == 0:
        return "data", bytes(range(256))
    if r == 1:
        return "data", b""
    if r == 10:
        return "value", [i, f"value-{i}", b"\x00\xff", True, None, 2.5]
    if r == 25:
        return "value", {"n": i, "s": f"map-{i}"}
    if r == 33:
        return "value", f"scalar-{i}"
    if r == 40:
        return "sequence", [[i, "a"], [b"\x01\x02", None]]
    if r == 45:
        return "multi", [f"part-{i}".encode(), bytes((i + k) % 256 for k in range(5)), b"z"]
    return "data", f"event {i} ".encode() + bytes((i * 7 + k) % 256 for k in range(i % 23))


def decimal_of(i):
    """(-1)^i * (100 i + 25) / 100 as an AMQP decimal128."""
    return decimal.Decimal((i % 2, tuple(int(d) for d in str(i * 100 + 25)), -2))


def typed(amqp_type, value):
    return {TYPE: amqp_type, VALUE: value}


def props_sent(i, decimal128=True):
    """Application properties as the official client sends them, in wire order.

    Our producer leaves decimal128 out: the official client cannot decode any (its decoder
    takes the exponent from the wrong bits and raises decimal.Overflow, even for its own
    encoding of Decimal("1")), and a message it cannot decode never reaches the application."""
    props = {
        "i": i,  # int
        "neg": -i - 1,  # int
        "mode": mode_of(i),  # string
        "utf8": f"ünï-€-{i}",  # string
        "half": i / 2 + 0.25,  # double
        "even": i % 2 == 0,  # boolean
        "raw": i.to_bytes(4, "big"),  # binary
        "id": uuid.UUID(int=i + 1),  # uuid
        "nothing": None,  # null
        "when": datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(milliseconds=i),
        "dec": decimal_of(i),  # decimal128
        "u8": typed(AMQPTypes.ubyte, i % 256),
        "i8": typed(AMQPTypes.byte, i % 256 - 128),
        "u16": typed(AMQPTypes.ushort, i * 257 % 65536),
        "i16": typed(AMQPTypes.short, -(i * 31 % 32768)),
        "u32": typed(AMQPTypes.uint, 4_000_000_000 + i),
        "u64": typed(AMQPTypes.ulong, 2**63 + i),
        "i64": typed(AMQPTypes.long, -(2**40) - i),
        "f32": typed(AMQPTypes.float, i + 0.5),
        "sym": typed(AMQPTypes.symbol, f"sym-{i}"),
        "u0": typed(AMQPTypes.uint, 0),
        "ul": typed(AMQPTypes.ulong, i % 256),
        "imax": 2**31 - 1 - i,  # int, 4-byte encoding
        "empty": "",
        "empty_raw": b"",
        "big_str": "ü" * 200 + str(i),  # str32
        "big_raw": bytes((i + k) % 256 for k in range(300)),  # vbin32
        "clé": i,
    }
    if not decimal128:
        del props["dec"]
    return props


def props_received(i):
    """The same as the official client decodes them: it has no string or symbol type of its own
    (both come back as bytes, keys too), timestamps come back as ms and typed values as plain
    numbers, so this cannot tell int from long; the Rust side checks the exact AMQP types."""
    out = {}
    for k, v in props_sent(i, decimal128=False).items():
        if isinstance(v, dict):
            v = v[VALUE]
        if isinstance(v, str):
            v = v.encode()
        elif isinstance(v, datetime.datetime):
            v = EPOCH_2024_MS + i
        out[k.encode()] = v
    return out


def ids_of(i):
    """(message-id, correlation-id) for every tenth event: each of the four id types in turn."""
    if i % 10:
        return None
    k = (i // 10) % 4
    ids = (f"msg-{i}", i, uuid.UUID(int=i + 7), f"bin-{i}".encode())
    corr = (f"corr-{i}", i + 1, uuid.UUID(int=i + 9), f"cbin-{i}".encode())
    return ids[k], corr[(k + 1) % 4]


def has_extras(i):
    """Events with every other `properties` field, a header and custom message annotations."""
    return i % 10 == 5


def full_properties(i):
    return dict(
        user_id=f"user-{i}".encode(),
        to=f"to-{i}",
        subject=f"subject-{i}",
        reply_to=f"reply-{i}",
        content_encoding="gzip",
        absolute_expiry_time=1_800_000_000_000 + i,
        creation_time=1_700_000_000_000 + i,
        group_id=f"group-{i % 7}",
        group_sequence=i,
        reply_to_group_id=f"rgroup-{i}",
    )


def header_of(i):
    # The official client replaces the header of every event it puts in a batch (or a list)
    # with a partition key by {durable: true}; the Rust test expects that on those events.
    return dict(durable=True, priority=i // 10 % 10, time_to_live=60_000 + i, first_acquirer=i % 20 == 5, delivery_count=i % 3)


def annotations_of(i):
    return {"x-opt-cross-str": f"ann-{i}", "x-opt-cross-num": i}


def outgoing(i):
    """The event as the official client sends it: EventData for one data section (through its
    public setters), AmqpAnnotatedMessage for the other bodies."""
    kind, body = body_of(i)
    ids = ids_of(i)
    if kind == "data":
        ev = EventData(body)
        ev.properties = props_sent(i)
        if ids:
            ev.message_id, ev.correlation_id = ids
            ev.content_type = CONTENT_TYPE
        raw = ev.raw_amqp_message
    else:
        arg = {"multi": "data_body", "value": "value_body", "sequence": "sequence_body"}[kind]
        ev = raw = AmqpAnnotatedMessage(**{arg: body})
        # Annotations must be a dict: EventDataBatch.add fails with AttributeError on None,
        # and send_event(..., partition_key=k) silently drops the key (it adds it to a new
        # dict that it then discards).
        raw.annotations = {}
        raw.application_properties = props_sent(i)
        if ids:
            raw.properties = AmqpMessageProperties(message_id=ids[0], correlation_id=ids[1], content_type=CONTENT_TYPE)
    if has_extras(i):
        raw.properties = AmqpMessageProperties(**full_properties(i))
        raw.header = AmqpMessageHeader(**header_of(i))
        raw.annotations = annotations_of(i)
    return ev


def received_body(ev):
    raw = ev.raw_amqp_message
    if raw.body_type == AmqpMessageBodyType.DATA:
        sections = list(raw.body)
        return ("data", sections[0]) if len(sections) == 1 else ("multi", sections)
    if raw.body_type == AmqpMessageBodyType.SEQUENCE:
        return "sequence", list(raw.body)
    return "value", raw.body


def as_received(v):
    """A sent value as the official client decodes it (strings as bytes, also inside lists/maps)."""
    if isinstance(v, str):
        return v.encode()
    if isinstance(v, list):
        return [as_received(x) for x in v]
    if isinstance(v, dict):
        return {as_received(k): as_received(x) for k, x in v.items()}
    return v


def check_event(c, ev, i, where):
    """Body, application properties, `properties`, header and custom annotations of event i as
    the official client received it."""
    kind, body = body_of(i)
    c.equal(received_body(ev), (kind, as_received(body) if kind != "data" else body), f"{where} body")
    got = ev.properties
    want = props_received(i)
    c.equal(got, want, f"{where} application properties")
    c.equal(list(got), list(want), f"{where} application property order")
    raw = ev.raw_amqp_message
    p = raw.properties
    ids = ids_of(i)
    if ids:
        c.equal((p.message_id, p.correlation_id), tuple(as_received(x) for x in ids), f"{where} message-id, correlation-id")
        c.equal(ev.content_type, CONTENT_TYPE, f"{where} content type")
    elif has_extras(i):
        want_p = {k: as_received(v) for k, v in full_properties(i).items()}
        got_p = {k: getattr(p, k, "<missing>") for k in want_p}
        c.equal(got_p, want_p, f"{where} properties")
        c.equal((p.message_id, p.correlation_id, p.content_type), (None, None, None), f"{where} unset properties")
    else:
        c.equal(p, None, f"{where} properties section")
    h = raw.header
    if has_extras(i):
        want_h = header_of(i)
        c.equal({k: getattr(h, k, "<missing>") for k in want_h}, want_h, f"{where} header")
    else:
        c.equal(h, None, f"{where} header section")
    custom = {k: v for k, v in raw.annotations.items() if not k.startswith(b"x-opt-") or k.startswith(b"x-opt-cross")}
    want_a = {k.encode(): as_received(v) for k, v in annotations_of(i).items()} if has_extras(i) else {}
    c.equal(custom, want_a, f"{where} custom message annotations")
    c.equal(raw.footer or None, None, f"{where} footer")
