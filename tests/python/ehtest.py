"""Shared helpers for the scenarios that drive the official `azure-eventhub` client against the
emulator. Each scenario prints exactly one JSON line on stdout ({"scenario", "ok", ...}) and
exits non-zero when a check failed; diagnostics go to stderr.

The events are deterministic functions of their global index `i`, so a reader can verify every
byte of what comes back without being told what was sent.
"""

import argparse
import datetime
import json
import sys
import threading
import time
import traceback
import uuid

from azure.eventhub import EventData, EventHubConsumerClient, EventHubProducerClient

TOTAL = 10_000
# Global index ranges of the four send modes (see send.py).
MODES = (("single", 0, 2500), ("batch", 2500, 5000), ("key", 5000, 7500), ("pid", 7500, 10_000))
KEYS = 7
CONTENT_TYPE = "application/x-eventhubs-test"


def mode_of(i):
    for name, lo, hi in MODES:
        if lo <= i < hi:
            return name
    raise ValueError(f"index {i} outside every mode")


def key_of(i):
    """The partition key event i was sent with, or None."""
    return f"key-{(i // 50) % KEYS}" if mode_of(i) == "key" else None


def pid_of(i, partition_count):
    """The partition id event i was sent to explicitly, or None."""
    return str((i // 50) % partition_count) if mode_of(i) == "pid" else None


def body_of(i):
    # Binary on purpose: NUL, 0xff and every other byte value show up over the run.
    return f"event {i} ".encode() + bytes((i * 7 + k) % 256 for k in range(i % 23))


def props_of(i):
    """Application properties as sent (several AMQP types)."""
    return {
        "i": i,  # int (the client encodes it as AMQP int)
        "neg": -i - 1,
        "mode": mode_of(i),  # string
        "utf8": f"ünï-€-{i}",
        "half": i / 2 + 0.25,  # double
        "even": i % 2 == 0,  # boolean
        "raw": i.to_bytes(4, "big"),  # binary
        "id": uuid.UUID(int=i + 1),  # uuid
        "nothing": None,  # null
        "when": datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
        + datetime.timedelta(milliseconds=i),  # timestamp
    }


def props_received(i):
    """The same as the client hands them back: keys and strings as bytes, timestamps as ms."""
    out = {}
    for k, v in props_of(i).items():
        if isinstance(v, str):
            v = v.encode()
        elif isinstance(v, datetime.datetime):
            v = 1_704_067_200_000 + i
        out[k.encode()] = v
    return out


def make_event(i):
    e = EventData(body_of(i))
    e.properties = props_of(i)
    if i % 10 == 0:
        e.message_id = f"msg-{i}"
        e.correlation_id = f"corr-{i}"
        e.content_type = CONTENT_TYPE
    return e


def body_bytes(ev):
    return b"".join(ev.body)


class Checks:
    """Collects failed checks; every check can fail, and each failure says what differed."""

    def __init__(self, scenario):
        self.scenario = scenario
        self.failures = []
        self.count = 0
        self.data = {}

    def check(self, cond, what):
        self.count += 1
        if not cond:
            self.failures.append(what)
            if len(self.failures) <= 50:
                print(f"FAILED: {what}", file=sys.stderr, flush=True)
        return bool(cond)

    def equal(self, got, want, what):
        return self.check(got == want, f"{what}: got {got!r}, want {want!r}")

    def finish(self):
        ok = not self.failures
        line = {
            "scenario": self.scenario,
            "ok": ok,
            "checks": self.count,
            "failed": len(self.failures),
            "failures": self.failures[:20],
        }
        line.update(self.data)
        print(json.dumps(line, default=str), flush=True)
        sys.exit(0 if ok else 1)


def run(scenario, main):
    """Runs main(args, checks); an exception is a failure with its traceback on stderr."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--conn", required=True, help="connection string")
    parser.add_argument("--hub", default="eh1")
    parser.add_argument("--manifest", help="file written by send.py")
    parser.add_argument("--ws-endpoint", help="host:port of the emulator's WebSocket listener")
    args = parser.parse_args()
    checks = Checks(scenario)
    t0 = time.monotonic()
    try:
        main(args, checks)
    except Exception as e:  # noqa: BLE001 - every error is a scenario failure
        traceback.print_exc()
        checks.check(False, f"exception: {type(e).__name__}: {e}")
    checks.data["seconds"] = round(time.monotonic() - t0, 2)
    checks.finish()


def producer(args):
    return EventHubProducerClient.from_connection_string(args.conn, eventhub_name=args.hub)


def consumer(args, **kwargs):
    return EventHubConsumerClient.from_connection_string(
        args.conn, consumer_group=kwargs.pop("consumer_group", "$default"), eventhub_name=args.hub, **kwargs
    )


class Reader:
    """One `EventHubConsumerClient.receive_batch` on one partition, run on a thread."""

    def __init__(self, args, partition, position, inclusive=False, owner_level=None, track=False):
        self.client = consumer(args)
        self.events = []
        self.errors = []
        self.closed = []
        self.last_enqueued = None
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        kwargs = dict(
            on_event_batch=self._on_batch,
            on_error=self._on_error,
            on_partition_close=self._on_close,
            partition_id=partition,
            starting_position=position,
            starting_position_inclusive=inclusive,
            max_batch_size=300,
            track_last_enqueued_event_properties=track,
        )
        if owner_level is not None:
            kwargs["owner_level"] = owner_level
        self.thread = threading.Thread(target=self.client.receive_batch, kwargs=kwargs, daemon=True)
        self.thread.start()

    def _on_batch(self, ctx, events):
        with self.changed:
            self.events.extend(events)
            if events and ctx.last_enqueued_event_properties:
                self.last_enqueued = dict(ctx.last_enqueued_event_properties)
            self.changed.notify_all()

    def _on_error(self, ctx, error):
        with self.changed:
            self.errors.append(error)
            self.changed.notify_all()

    def _on_close(self, ctx, reason):
        with self.changed:
            self.closed.append(str(reason))
            self.changed.notify_all()

    def wait(self, pred, timeout):
        """Waits until pred(self) holds; returns whether it did."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while not pred(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.changed.wait(min(left, 0.2))
            return True

    def wait_count(self, n, timeout=30):
        return self.wait(lambda r: len(r.events) >= n, timeout)

    def snapshot(self):
        with self.lock:
            return list(self.events), list(self.errors)

    def close(self):
        self.client.close()
        self.thread.join(15)
