"""The official client's buffered producer (`buffered_mode=True`) publishes through the
emulator: 2 000 events by partition key (13 keys) and 1 000 without routing, flushed and
closed; every event must reach on_success once and none on_error. The Rust side reads the
hub back."""

import threading

from azure.eventhub import EventData, EventHubProducerClient

from ehtest import run

KEYED = 2000
TOTAL = 3000
KEYS = 13


def index(e):
    # Outgoing events keep the str keys they were given; received ones have bytes.
    p = e.properties
    return p["i"] if "i" in p else p[b"i"]


def main(args, c):
    lock = threading.Lock()
    ok = []
    failed = []
    key_partitions = {}

    def on_success(events, pid):
        with lock:
            for e in events:
                i = index(e)
                ok.append(i)
                if i < KEYED:
                    key_partitions.setdefault(f"bk-{i % KEYS}", set()).add(pid)

    def on_error(events, pid, error):
        with lock:
            failed.extend(index(e) for e in events)
            c.data.setdefault("errors", []).append(f"{pid}: {error}"[:200])

    prod = EventHubProducerClient.from_connection_string(
        args.conn,
        eventhub_name=args.hub,
        buffered_mode=True,
        on_success=on_success,
        on_error=on_error,
        max_wait_time=0.5,
    )
    for i in range(TOTAL):
        ev = EventData(f"buffered {i}")
        ev.properties = {"i": i}
        if i < KEYED:
            prod.send_event(ev, partition_key=f"bk-{i % KEYS}")
        else:
            prod.send_event(ev)
    prod.flush()
    prod.close()

    c.equal(len(failed), 0, "no event reported failed")
    c.equal(len(ok), TOTAL, "every event reported sent")
    c.equal(len(set(ok)), TOTAL, "no event reported twice")
    c.check(all(len(p) == 1 for p in key_partitions.values()), f"one partition per key: {key_partitions!r}")
    c.data["sent"] = len(ok)
    c.data["key_partitions"] = {k: sorted(v)[0] for k, v in key_partitions.items()}


run("buffered", main)
