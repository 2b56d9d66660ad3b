"""Python side of scripts/bench_receive.sh: the official `azure-eventhub` consumer reads N events
of partition "0" from the earliest position with `receive_batch` (default prefetch 300,
`max_batch_size` events per callback) and prints one `RESULT key=value ...` line in the same
shape as examples/bench_recv.rs: seconds from the first event to the N-th, CPU seconds of the
process in that window (getrusage, all threads) and its peak RSS.

    python scripts/bench_receive.py --conn CS [--hub eh1] --count 100000 [--batch 300]
"""

import argparse
import resource
import sys
import threading
import time

from azure.eventhub import EventHubConsumerClient


def cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--conn", required=True, help="connection string")
    parser.add_argument("--hub", default="eh1")
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=300)
    args = parser.parse_args()

    client = EventHubConsumerClient.from_connection_string(
        args.conn, consumer_group="$Default", eventhub_name=args.hub
    )
    state = {"events": 0, "bytes": 0, "next": None, "t0": None, "c0": None, "error": None}
    done = threading.Event()

    def on_batch(_ctx, events):
        if done.is_set() or not events:
            return
        if state["t0"] is None:
            state["t0"] = time.perf_counter()
            state["c0"] = cpu_seconds()
        for e in events:
            seq = e.sequence_number
            if state["next"] is not None and seq != state["next"]:
                state["error"] = f"expected sequence number {state['next']}, got {seq}"
                done.set()
                return
            state["next"] = seq + 1
            state["events"] += 1
            state["bytes"] += len(next(e.body))
            if state["events"] >= args.count:
                state["secs"] = time.perf_counter() - state["t0"]
                state["cpu"] = cpu_seconds() - state["c0"]
                done.set()
                return

    worker = threading.Thread(
        target=client.receive_batch,
        kwargs={
            "on_event_batch": on_batch,
            "partition_id": "0",
            "starting_position": "-1",
            "max_batch_size": args.batch,
            "max_wait_time": 5,
        },
        daemon=True,
    )
    worker.start()
    # No progress for this long means the partition holds fewer events than asked for.
    last = (time.monotonic(), 0)
    while not done.wait(0.5):
        if state["events"] != last[1]:
            last = (time.monotonic(), state["events"])
        elif time.monotonic() - last[0] > 30:
            state["error"] = f"no progress in 30 s after {state['events']} events"
            break
    client.close()
    worker.join(10)
    if state["error"]:
        sys.exit(state["error"])

    size = state["bytes"] // max(state["events"], 1)
    # ru_maxrss is in KiB on Linux.
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        f"RESULT impl=python size={size} events={state['events']} "
        f"secs={state['secs']:.4f} cpu={state['cpu']:.3f} maxrss_kib={maxrss}",
        flush=True,
    )


if __name__ == "__main__":
    main()
