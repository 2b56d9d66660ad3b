"""Cross-client, first half: the official client sends the events of crossspec.py in every
mode (single events, lists and batches to the hub, then lists, batches and singles by
partition key and by partition id); the Rust test then reads them with our consumer. Writes a
manifest for it: partition count and the send time window."""

import json
import time

from crossspec import CHUNK, MODES, TOTAL, chunk_style, key_of, outgoing, pid_of
from ehtest import producer, run


def main(args, c):
    prod = producer(args)
    count = len(prod.get_partition_ids())
    t_start = time.time()
    styles = {}
    for mode, lo, hi in MODES:
        for start in range(lo, hi, CHUNK):
            idx = range(start, min(start + CHUNK, hi))
            if mode == "key":
                route = {"partition_key": key_of(start)}
            elif mode == "pid":
                route = {"partition_id": pid_of(start, count)}
            else:
                route = {}
            style = {"single": "singles", "list": "list", "batch": "batch"}.get(mode) or chunk_style(start)
            styles[style] = styles.get(style, 0) + len(idx)
            if style == "singles":
                for i in idx:
                    prod.send_event(outgoing(i), **route)
            elif style == "list":
                prod.send_batch([outgoing(i) for i in idx], **route)
            else:
                batch = prod.create_batch(**route)
                for i in idx:
                    batch.add(outgoing(i))
                c.equal(len(batch), len(idx), f"batch from {start} holds every event")
                prod.send_batch(batch)
    t_end = time.time()
    prod.close()
    with open(args.manifest, "w") as f:
        json.dump({"partition_count": count, "total": TOTAL, "t_start_ms": int(t_start * 1000), "t_end_ms": int(t_end * 1000)}, f)
    c.data.update(sent=TOTAL, styles=styles)


run("xsend", main)
