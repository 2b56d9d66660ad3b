"""Cross-client, second half: the Rust test sent the events of crossspec.py with our producer
in every mode; the official consumer reads every partition from earliest and checks each
event (body, application properties, message properties, header, annotations, partition key,
routing) and the partitions' system properties (sequence numbers, offsets, enqueued times).
Reports counts per mode and per partition, and each partition's event indexes in order, for
the Rust test to compare with the emulator's view."""

import json
import threading
import time

from crossspec import MODES, TOTAL, check_event, key_of, mode_of, pid_of
from ehtest import Reader, producer, run


def read_partition(args, pid, want):
    r = Reader(args, pid, "-1")
    r.wait_count(want, 60)
    time.sleep(0.3)  # anything beyond what we expect would show up now
    r.close()
    return r.snapshot()


def main(args, c):
    with open(args.manifest) as f:
        manifest = json.load(f)
    count = manifest["partition_count"]
    lo_ms, hi_ms = manifest["t_start_ms"] - 2000, manifest["t_end_ms"] + 2000
    prod = producer(args)
    c.equal(len(prod.get_partition_ids()), count, "partition count")
    want = {str(p): prod.get_partition_properties(str(p))["last_enqueued_sequence_number"] + 1 for p in range(count)}
    prod.close()
    c.equal(sum(want.values()), TOTAL, "partition properties add up to every event sent")

    results = {}
    threads = [threading.Thread(target=lambda p=p: results.__setitem__(p, read_partition(args, p, want[p]))) for p in want]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    seen = {}
    per_mode = {name: 0 for name, _, _ in MODES}
    key_partitions = {}
    spread = {"single": set(), "list": set(), "batch": set()}
    order = {}
    for pid, (events, errors) in sorted(results.items()):
        c.equal(errors, [], f"partition {pid}: receive errors")
        c.equal(len(events), want[pid], f"partition {pid}: events read from earliest")
        c.equal([e.sequence_number for e in events], list(range(len(events))), f"partition {pid}: sequence numbers")
        offsets = [int(e.offset) for e in events]
        c.check(all(a < b for a, b in zip(offsets, offsets[1:])), f"partition {pid}: offsets strictly increasing")
        times = [int(e.enqueued_time.timestamp() * 1000) for e in events]
        c.check(all(a <= b for a, b in zip(times, times[1:])), f"partition {pid}: enqueued times never go back")
        order[pid] = []
        for e, t in zip(events, times):
            i = e.properties.get(b"i") if e.properties else None
            if not c.check(isinstance(i, int) and 0 <= i < TOTAL, f"partition {pid}: event without a valid index: {e!r}"):
                continue
            where = f"event {i} (partition {pid}, seq {e.sequence_number})"
            c.check(i not in seen, f"{where} delivered twice (also on partition {seen.get(i)})")
            seen[i] = pid
            order[pid].append(i)
            check_event(c, e, i, where)
            key = key_of(i)
            sysp = e.system_properties
            c.equal(e.partition_key, key.encode() if key else None, f"{where} partition key")
            c.equal(sysp.get(b"x-opt-sequence-number"), e.sequence_number, f"{where} sequence number annotation")
            c.equal(sysp.get(b"x-opt-offset"), str(e.offset).encode(), f"{where} offset annotation")
            c.check(lo_ms <= t <= hi_ms, f"{where} enqueued time {t} outside the send window [{lo_ms}, {hi_ms}]")
            want_pid = pid_of(i, count)
            if want_pid is not None:
                c.equal(pid, want_pid, f"{where} partition")
            if key:
                key_partitions.setdefault(key, set()).add(pid)
            if mode_of(i) in spread:
                spread[mode_of(i)].add(pid)
            per_mode[mode_of(i)] += 1
        c.check(all(a < b for a, b in zip(order[pid], order[pid][1:])), f"partition {pid}: events in the order they were sent")
    c.equal(len(seen), TOTAL, "distinct events read back")
    for key, pids in sorted(key_partitions.items()):
        c.equal(len(pids), 1, f"all events with {key} on one partition")
    for mode, pids in spread.items():
        c.equal(len(pids), count, f"hub-routed {mode} events spread over every partition")
    c.data.update(
        per_partition={pid: len(ev) for pid, (ev, _) in sorted(results.items())},
        per_mode=per_mode,
        key_partitions={k: sorted(v) for k, v in sorted(key_partitions.items())},
        order=order,
    )


run("xread", main)
