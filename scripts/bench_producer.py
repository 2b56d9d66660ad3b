"""Python side of scripts/bench_producer.sh: the official `azure-eventhub` client sends N events
of one body size to partition "0" with `create_batch(partition_id="0")` + `send_batch`, and
prints one `RESULT key=value ...` line in the same shape as examples/bench_send.rs: elapsed
seconds from the first batch to the last acknowledgement, CPU seconds of the process in that
window (getrusage, all threads) and its peak RSS.

    python scripts/bench_producer.py --conn CS [--hub eh1] --size 100 --count 50000
"""

import argparse
import resource
import sys
import time

from azure.eventhub import EventData, EventHubProducerClient


def cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def fill(producer, body, left, carry):
    """A link-sized batch of up to `left` events; the event that did not fit the previous batch
    goes first. Returns the batch, its event count and the event that did not fit."""
    batch = producer.create_batch(partition_id="0")
    n = 0
    while n < left:
        event = carry if carry is not None else EventData(body)
        carry = None
        try:
            batch.add(event)
        except ValueError:
            carry = event
            break
        n += 1
    if n == 0:
        sys.exit(f"an event of {len(body)} bytes does not fit in a batch")
    return batch, n, carry


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--conn", required=True, help="connection string")
    parser.add_argument("--hub", default="eh1")
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--count", type=int, default=50_000)
    args = parser.parse_args()

    body = bytes(i % 251 for i in range(args.size))
    producer = EventHubProducerClient.from_connection_string(args.conn, eventhub_name=args.hub)
    with producer:
        # Warm-up with one full batch: the client attaches lazily, so connection, CBS and link
        # setup happen here and stay out of the measured window (as in the Rust senders).
        warm, _, _ = fill(producer, body, 1 << 30, None)
        producer.send_batch(warm)

        cpu0 = cpu_seconds()
        start = time.perf_counter()
        sent = batches = 0
        carry = None
        while sent < args.count:
            batch, n, carry = fill(producer, body, args.count - sent, carry)
            producer.send_batch(batch)
            sent += n
            batches += 1
        secs = time.perf_counter() - start
        cpu = cpu_seconds() - cpu0

    # ru_maxrss is in KiB on Linux.
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        f"RESULT impl=python size={args.size} events={sent} batches={batches} "
        f"secs={secs:.4f} cpu={cpu:.3f} maxrss_kib={maxrss}",
        flush=True,
    )


if __name__ == "__main__":
    main()
