"""Reads the events of send.py back through the official client and verifies them:
from earliest (every partition, all 10 000 events: bodies, application properties, message
properties and system properties, routing, ordering), then from an offset, a sequence number
and an enqueued time (each inclusive and exclusive, on every partition), and from latest."""

import json
import threading
import time

from ehtest import (
    CONTENT_TYPE,
    TOTAL,
    Reader,
    body_bytes,
    body_of,
    key_of,
    make_event,
    mode_of,
    pid_of,
    producer,
    props_received,
    run,
)

SLICE = 120  # events compared after each start position


def index_of(ev):
    i = ev.properties.get(b"i") if ev.properties else None
    return i if isinstance(i, int) else None


def verify_event(c, ev, pid, count, window):
    """Everything about one event that follows from its index."""
    i = index_of(ev)
    if not c.check(i is not None and 0 <= i < TOTAL, f"partition {pid}: event without a valid index: {ev!r}"):
        return None
    where = f"event {i} (partition {pid}, seq {ev.sequence_number})"
    c.equal(body_bytes(ev), body_of(i), f"{where} body")
    c.equal(ev.properties, props_received(i), f"{where} application properties")
    sysp = ev.system_properties
    key = key_of(i)
    c.equal(ev.partition_key, key.encode() if key else None, f"{where} partition key")
    c.equal(sysp.get(b"x-opt-partition-key"), key.encode() if key else None, f"{where} x-opt-partition-key")
    c.equal(sysp.get(b"x-opt-sequence-number"), ev.sequence_number, f"{where} sequence number annotation")
    c.equal(sysp.get(b"x-opt-offset"), str(ev.offset).encode(), f"{where} offset annotation")
    if i % 10 == 0:
        c.equal(sysp.get(b"message-id"), f"msg-{i}".encode(), f"{where} message-id")
        c.equal(sysp.get(b"correlation-id"), f"corr-{i}".encode(), f"{where} correlation-id")
        c.equal(sysp.get(b"content-type"), CONTENT_TYPE.encode(), f"{where} content-type")
        c.equal(ev.content_type, CONTENT_TYPE, f"{where} EventData.content_type")
    else:
        c.check(b"message-id" not in sysp, f"{where} has a message-id it was not sent with")
    want_pid = pid_of(i, count)
    if want_pid is not None:
        c.equal(pid, want_pid, f"{where} sent to partition {want_pid}")
    t = int(ev.enqueued_time.timestamp() * 1000)
    c.check(window[0] - 2000 <= t <= window[1] + 2000, f"{where} enqueued time {t} outside the send window {window}")
    return i


def read_partition(args, pid, position, inclusive, want, timeout=60, track=False):
    r = Reader(args, pid, position, inclusive=inclusive, track=track)
    r.wait_count(want, timeout)
    time.sleep(0.3)  # anything beyond what we expect would show up now
    r.close()
    events, errors = r.snapshot()
    return events, errors, r.last_enqueued


def earliest(args, c, prod, count, window):
    """All partitions from '-1', read concurrently; returns {pid: [events]}."""
    props = {pid: prod.get_partition_properties(pid) for pid in map(str, range(count))}
    total = sum(p["last_enqueued_sequence_number"] + 1 for p in props.values())
    c.equal(total, TOTAL, "partition properties add up to every event sent")
    results = {}

    def one(pid):
        want = props[pid]["last_enqueued_sequence_number"] + 1
        results[pid] = read_partition(args, pid, "-1", False, want, track=True)

    threads = [threading.Thread(target=one, args=(pid,)) for pid in props]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    seen = {}
    key_partitions = {}
    rr_partitions = {"single": set(), "batch": set()}
    by_pid = {}
    for pid, (events, errors, last_enqueued) in sorted(results.items()):
        pp = props[pid]
        n = pp["last_enqueued_sequence_number"] + 1
        c.equal(errors, [], f"partition {pid}: receive errors")
        c.equal(len(events), n, f"partition {pid}: events read from earliest")
        c.equal([e.sequence_number for e in events], list(range(len(events))), f"partition {pid}: sequence numbers 0..n-1 in order")
        offsets = [int(e.offset) for e in events]
        c.check(all(a < b for a, b in zip(offsets, offsets[1:])), f"partition {pid}: offsets strictly increasing")
        times = [e.enqueued_time for e in events]
        c.check(all(a <= b for a, b in zip(times, times[1:])), f"partition {pid}: enqueued times never go back")
        indexes = []
        for e in events:
            i = verify_event(c, e, pid, count, window)
            if i is None:
                continue
            indexes.append(i)
            c.check(i not in seen, f"event {i} delivered twice (partitions {seen.get(i)} and {pid})")
            seen[i] = pid
            if key_of(i):
                key_partitions.setdefault(key_of(i), set()).add(pid)
            if mode_of(i) in rr_partitions:
                rr_partitions[mode_of(i)].add(pid)
        c.check(all(a < b for a, b in zip(indexes, indexes[1:])), f"partition {pid}: events in the order they were sent")
        if events:
            c.equal(pp["last_enqueued_offset"], events[-1].offset, f"partition {pid}: last_enqueued_offset")
            c.equal(pp["last_enqueued_time_utc"], events[-1].enqueued_time, f"partition {pid}: last_enqueued_time_utc")
            c.equal(pp["beginning_sequence_number"], 0, f"partition {pid}: beginning_sequence_number")
            c.check(
                last_enqueued is not None and last_enqueued.get("sequence_number") == n - 1,
                f"partition {pid}: last enqueued event properties (runtime metrics) {last_enqueued!r}",
            )
        by_pid[pid] = events
    c.equal(len(seen), TOTAL, "distinct events read back")
    for key, pids in sorted(key_partitions.items()):
        c.equal(len(pids), 1, f"all events with {key} in one partition")
    for mode, pids in rr_partitions.items():
        c.equal(len(pids), count, f"service-routed {mode} events spread over every partition")
    c.data["per_partition"] = {pid: len(ev) for pid, ev in sorted(by_pid.items())}
    return by_pid


def same(c, what, got, want):
    """Compares received events with the reference read from earliest, field by field."""
    c.check(len(got) >= min(len(want), SLICE), f"{what}: got {len(got)} events, want at least {min(len(want), SLICE)}")
    for g, w in zip(got, want):
        if not c.check(
            (g.sequence_number, g.offset, g.enqueued_time, body_bytes(g), g.properties, g.system_properties)
            == (w.sequence_number, w.offset, w.enqueued_time, body_bytes(w), w.properties, w.system_properties),
            f"{what}: event seq {g.sequence_number} differs from seq {w.sequence_number} read from earliest",
        ):
            break


def positions(args, c, by_pid):
    """Offset, sequence number and enqueued time starts, inclusive and exclusive."""
    runs = []
    for pid, events in sorted(by_pid.items()):
        if len(events) < 10:
            c.check(False, f"partition {pid} has too few events ({len(events)}) for position tests")
            continue
        k = len(events) // 3
        ref = events[k]
        t = ref.enqueued_time
        first_at_or_after = next(j for j, e in enumerate(events) if e.enqueued_time >= t)
        first_after = next((j for j, e in enumerate(events) if e.enqueued_time > t), len(events))
        runs += [
            (pid, "offset", ref.offset, True, k),
            (pid, "offset", ref.offset, False, k + 1),
            (pid, "sequence number", ref.sequence_number, True, k),
            (pid, "sequence number", ref.sequence_number, False, k + 1),
            (pid, "enqueued time", t, True, first_at_or_after),
            (pid, "enqueued time", t, False, first_after),
        ]
    results = []

    def partition_runs(pid):
        # One partition's starts one after the other; the partitions side by side.
        for run_pid, kind, position, inclusive, start in runs:
            if run_pid != pid:
                continue
            want = by_pid[pid][start:]
            got, errors, _ = read_partition(args, pid, position, inclusive, min(len(want), SLICE), timeout=30)
            results.append((pid, kind, position, inclusive, want, got, errors))

    threads = [threading.Thread(target=partition_runs, args=(pid,)) for pid in sorted(by_pid)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    c.equal(len(results), len(runs), "every position read finished")
    for pid, kind, position, inclusive, want, got, errors in sorted(results, key=lambda r: (r[0], r[1], r[3])):
        what = f"partition {pid} from {kind} {position!r} {'inclusive' if inclusive else 'exclusive'}"
        c.equal(errors, [], f"{what}: receive errors")
        same(c, what, got, want)
    c.data["position_reads"] = len(runs)


def latest(args, c, prod, count):
    """'@latest' explicitly and by default (no position): only events sent after the attach."""
    for pid, position in (("0", "@latest"), (str(count - 1), None)):
        before = prod.get_partition_properties(pid)["last_enqueued_sequence_number"]
        r = Reader(args, pid, position)
        markers = []

        def mark(n):
            e = make_event(n % TOTAL)
            e.properties = {"marker": n}
            prod.send_event(e, partition_id=pid)
            markers.append(n)

        # The attach happens some time after receive() starts: send markers until one arrives.
        n = 0
        while not r.wait_count(1, 0.5) and n < 40:
            mark(n)
            n += 1
        for _ in range(20):
            mark(n)
            n += 1
        what = f"partition {pid} from {position or 'the default position'}"
        c.check(r.wait(lambda r: any(e.properties.get(b"marker") == n - 1 for e in r.events), 20), f"{what}: last marker arrives")
        time.sleep(0.3)
        r.close()
        events, errors = r.snapshot()
        c.equal(errors, [], f"{what}: receive errors")
        got = [e.properties.get(b"marker") for e in events]
        c.check(None not in got, f"{what}: an event from before the attach was delivered")
        tail = bool(got) and got[0] in markers and got == markers[markers.index(got[0]) :]
        c.check(tail, f"{what}: markers received {got} are not the tail of those sent {markers}")
        c.check(all(e.sequence_number > before for e in events), f"{what}: sequence numbers after {before}")
        c.data.setdefault("latest", {})[pid] = {"markers_sent": len(markers), "received": len(got)}


def main(args, c):
    with open(args.manifest) as f:
        manifest = json.load(f)
    count = manifest["partition_count"]
    window = (manifest["t_start_ms"], manifest["t_end_ms"])
    prod = producer(args)
    t = time.monotonic()
    by_pid = earliest(args, c, prod, count, window)
    c.data["earliest_seconds"] = round(time.monotonic() - t, 2)
    t = time.monotonic()
    positions(args, c, by_pid)
    c.data["positions_seconds"] = round(time.monotonic() - t, 2)
    latest(args, c, prod, count)
    prod.close()


run("read", main)
