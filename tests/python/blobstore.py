"""An `EventHubConsumerClient` with the official `BlobCheckpointStore`
(azure-eventhub-checkpointstoreblob) on all partitions, sharing a Blob Storage container with
our `BlobPartitionManager`: it reads from the stored checkpoints (earliest where there are
none), checkpoints after every event, and stops once it has `--expect` events and then
`--quiet` seconds without one (or after `--run` seconds when given). It reports every
(partition, sequence number) it was handed and the partitions it owned when it stopped.

The Python client keeps the port in its namespace when it talks to a development emulator
(`localhost:PORT`), where our client says `localhost`; against Event Hubs both are the
namespace host. `--namespace` maps the one to the other at the store's edge so that both
share one layout here."""

import argparse
import threading
import time

from azure.eventhub.extensions.checkpointstoreblob import BlobCheckpointStore

import traceback

from ehtest import Checks, consumer


class MappedStore(BlobCheckpointStore):
    """BlobCheckpointStore seen under another namespace name."""

    ours = theirs = None

    def _in(self, ns):
        return self.ours if ns == self.theirs else ns

    def _out(self, items):
        out = []
        for item in items:
            item = dict(item)
            if item.get("fully_qualified_namespace") == self.ours:
                item["fully_qualified_namespace"] = self.theirs
            out.append(item)
        return out

    def list_ownership(self, fully_qualified_namespace, eventhub_name, consumer_group, **kwargs):
        return self._out(super().list_ownership(self._in(fully_qualified_namespace), eventhub_name, consumer_group, **kwargs))

    def claim_ownership(self, ownership_list, **kwargs):
        mapped = []
        for o in ownership_list:
            o = dict(o)
            o["fully_qualified_namespace"] = self._in(o["fully_qualified_namespace"])
            mapped.append(o)
        return self._out(super().claim_ownership(mapped, **kwargs))

    def update_checkpoint(self, checkpoint, **kwargs):
        checkpoint = dict(checkpoint)
        checkpoint["fully_qualified_namespace"] = self._in(checkpoint["fully_qualified_namespace"])
        return super().update_checkpoint(checkpoint, **kwargs)

    def list_checkpoints(self, fully_qualified_namespace, eventhub_name, consumer_group, **kwargs):
        return self._out(super().list_checkpoints(self._in(fully_qualified_namespace), eventhub_name, consumer_group, **kwargs))


def main(args, checks):
    lock = threading.Condition()
    events = {}
    owned = set()
    errors = []

    def on_event(ctx, ev):
        if ev is None:
            return
        with lock:
            events.setdefault(ctx.partition_id, []).append(ev.sequence_number)
            lock.notify_all()
        ctx.update_checkpoint(ev)

    def on_init(ctx):
        with lock:
            owned.add(ctx.partition_id)

    def on_close(ctx, reason):
        with lock:
            owned.discard(ctx.partition_id)

    def on_error(ctx, err):
        with lock:
            errors.append(repr(err))

    probe = consumer(args)
    theirs = probe._address.hostname
    probe.close()
    store = MappedStore.from_connection_string(args.storage, args.container)
    store.ours, store.theirs = args.namespace, theirs
    client = consumer(
        args,
        checkpoint_store=store,
        load_balancing_interval=args.interval,
        partition_ownership_expiration_interval=args.expiration,
    )
    thread = threading.Thread(
        target=client.receive,
        kwargs=dict(
            on_event=on_event,
            on_error=on_error,
            on_partition_initialize=on_init,
            on_partition_close=on_close,
            starting_position="-1",
        ),
        daemon=True,
    )
    thread.start()
    t0 = time.monotonic()
    last_count, last_change = 0, time.monotonic()
    while True:
        time.sleep(0.1)
        with lock:
            n = sum(len(v) for v in events.values())
        if n != last_count:
            last_count, last_change = n, time.monotonic()
        if args.run is not None:
            if time.monotonic() - t0 >= args.run:
                break
        elif n >= args.expect and time.monotonic() - last_change >= args.quiet:
            break
        if time.monotonic() - t0 > args.timeout:
            checks.check(False, f"timed out with {n} of {args.expect} events")
            break
    with lock:
        checks.data["owned_at_stop"] = sorted(owned, key=int)
    client.close()
    thread.join(timeout=30)
    with lock:
        checks.data["events"] = {p: v for p, v in sorted(events.items(), key=lambda kv: int(kv[0]))}
        checks.data["total"] = sum(len(v) for v in events.values())
        checks.data["errors"] = errors[:5]
    if args.run is None:
        checks.check(checks.data["total"] >= args.expect, f"{checks.data['total']} of {args.expect} events")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--conn", required=True)
    parser.add_argument("--hub", default="eh1")
    parser.add_argument("--storage", required=True, help="storage connection string")
    parser.add_argument("--container", required=True)
    parser.add_argument("--namespace", required=True, help="the namespace our client uses")
    parser.add_argument("--expect", type=int, default=0)
    parser.add_argument("--quiet", type=float, default=2.0)
    parser.add_argument("--run", type=float, default=None, help="run this long, then stop")
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--expiration", type=float, default=6.0)
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()
    checks = Checks("blobstore")
    t0 = time.monotonic()
    try:
        main(args, checks)
    except Exception as e:  # noqa: BLE001 - every error is a scenario failure
        traceback.print_exc()
        checks.check(False, f"exception: {type(e).__name__}: {e}")
    checks.data["seconds"] = round(time.monotonic() - t0, 2)
    checks.finish()
