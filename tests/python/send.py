"""Sends the 10 000 test events through the official client in four modes (2 500 each):
single events (service-routed), batches (service-routed; `create_batch` and plain lists),
by partition key (batches, lists and singles) and by partition id (batches, lists and
singles). Writes a manifest for read.py: partition count and the send time window."""

import json
import time

from ehtest import MODES, TOTAL, key_of, make_event, pid_of, producer, run


def send_chunk(prod, c, lo, hi, use_list, **route):
    events = [make_event(i) for i in range(lo, hi)]
    if use_list:
        prod.send_batch(events, **route)
        return
    batch = prod.create_batch(**route)
    for e in events:
        batch.add(e)
    c.equal(len(batch), hi - lo, f"batch [{lo},{hi}) holds every event")
    prod.send_batch(batch)


def main(args, c):
    prod = producer(args)
    count = len(prod.get_partition_ids())
    t_start = time.time()
    timings = {}
    for mode, lo, hi in MODES:
        t = time.monotonic()
        if mode == "single":
            for i in range(lo, hi):
                prod.send_event(make_event(i))
        elif mode == "batch":
            for n, start in enumerate(range(lo, hi, 100)):
                send_chunk(prod, c, start, min(start + 100, hi), n % 2 == 1)
        else:
            # Chunks of 50 share a key (or partition); the last 100 go one by one.
            singles = hi - 100
            for n, start in enumerate(range(lo, singles, 50)):
                route = {"partition_key": key_of(start)} if mode == "key" else {"partition_id": pid_of(start, count)}
                send_chunk(prod, c, start, start + 50, n % 3 == 2, **route)
            for i in range(singles, hi):
                route = {"partition_key": key_of(i)} if mode == "key" else {"partition_id": pid_of(i, count)}
                prod.send_event(make_event(i), **route)
        timings[mode] = round(time.monotonic() - t, 2)
    t_end = time.time()

    prod.close()
    manifest = {
        "partition_count": count,
        "total": TOTAL,
        "t_start_ms": int(t_start * 1000),
        "t_end_ms": int(t_end * 1000),
    }
    with open(args.manifest, "w") as f:
        json.dump(manifest, f)
    c.data.update(sent=TOTAL, send_seconds=timings)


run("send", main)
