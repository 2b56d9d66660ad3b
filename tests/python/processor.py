"""`EventHubConsumerClient` reading all partitions (the client's event processor): with its
default in-memory checkpoint store, then with an explicit `InMemoryCheckpointStore` whose
checkpoints and ownership are checked, a second client resuming from those checkpoints, and a
third one sharing the store, which must end up with half the partitions (owner level 0 taking
over from owner level 0) without any event being lost or handled twice after the handover."""

import threading
import time

from azure.eventhub._eventprocessor.in_memory_checkpoint_store import InMemoryCheckpointStore

from ehtest import body_bytes, body_of, consumer, make_event, producer, props_received, run

PER_PARTITION = 500


class Processor:
    """One consumer client on all partitions, receive() on a thread."""

    def __init__(self, args, store=None, interval=None, checkpoint_every=50):
        kwargs = {}
        if store is not None:
            kwargs["checkpoint_store"] = store
        if interval is not None:
            kwargs["load_balancing_interval"] = interval
        self.client = consumer(args, **kwargs)
        self.lock = threading.Condition()
        self.events = {}
        self.errors = []
        self.opened = []
        self.closed = []
        self.every = checkpoint_every
        self.thread = threading.Thread(
            target=self.client.receive,
            kwargs=dict(
                on_event=self._on_event,
                on_error=self._on_error,
                on_partition_initialize=self._on_init,
                on_partition_close=self._on_close,
                starting_position="-1",
            ),
            daemon=True,
        )
        self.thread.start()

    def _on_event(self, ctx, ev):
        if ev is None:
            return
        with self.lock:
            self.events.setdefault(ctx.partition_id, []).append(ev)
            self.lock.notify_all()
        if ev.sequence_number % self.every == self.every - 1:
            ctx.update_checkpoint(ev)

    def _on_error(self, ctx, err):
        with self.lock:
            self.errors.append(err)

    def _on_init(self, ctx):
        with self.lock:
            self.opened.append(ctx.partition_id)

    def _on_close(self, ctx, reason):
        with self.lock:
            self.closed.append((ctx.partition_id, str(reason)))

    def total(self):
        with self.lock:
            return sum(len(v) for v in self.events.values())

    def wait(self, pred, timeout):
        deadline = time.monotonic() + timeout
        with self.lock:
            while not pred(self):
                if time.monotonic() > deadline:
                    return False
                self.lock.wait(0.2)
            return True

    def close(self):
        self.client.close()
        self.thread.join(20)


def verify_partitions(c, what, events_by_pid, want_by_pid):
    for pid, want in sorted(want_by_pid.items()):
        got = events_by_pid.get(pid, [])
        c.equal([e.properties.get(b"i") for e in got], want, f"{what}: partition {pid} indexes")
        for e in got:
            i = e.properties.get(b"i")
            if not (c.equal(body_bytes(e), body_of(i), f"{what}: event {i} body") and c.equal(e.properties, props_received(i), f"{what}: event {i} properties")):
                break


def main(args, c):
    prod = producer(args)
    ids = prod.get_partition_ids()
    want = {pid: [] for pid in ids}
    n = 0
    for pid in ids:
        batch = prod.create_batch(partition_id=pid)
        for _ in range(PER_PARTITION):
            batch.add(make_event(n))
            want[pid].append(n)
            n += 1
        prod.send_batch(batch)
    total = n

    # 1. The client's own in-memory checkpoint store (no store given): all partitions.
    t = time.monotonic()
    p = Processor(args)
    c.check(p.wait(lambda p: p.total() >= total, 60), f"default store: read every event ({p.total()}/{total})")
    time.sleep(0.5)
    p.close()
    verify_partitions(c, "default store", p.events, want)
    c.equal(sorted(set(p.opened)), sorted(ids), "default store: every partition initialised")
    c.equal(p.errors, [], "default store: errors")
    c.data["default_store_seconds"] = round(time.monotonic() - t, 2)

    # 2. An explicit InMemoryCheckpointStore: checkpoints and ownership land in it.
    t = time.monotonic()
    store = InMemoryCheckpointStore()
    p = Processor(args, store=store)
    c.check(p.wait(lambda p: p.total() >= total, 60), f"explicit store: read every event ({p.total()}/{total})")
    time.sleep(0.5)
    p.close()
    verify_partitions(c, "explicit store", p.events, want)
    c.equal(p.errors, [], "explicit store: errors")
    ns = args.conn.split("sb://")[1].split(";")[0].split("/")[0]
    checkpoints = {cp["partition_id"]: cp for cp in store.list_checkpoints(ns, args.hub, "$default")}
    c.equal(sorted(checkpoints), sorted(ids), "a checkpoint per partition")
    for pid in ids:
        last = p.events.get(pid, [None])[-1]
        cp = checkpoints.get(pid, {})
        if last is not None:
            c.equal(cp.get("sequence_number"), last.sequence_number, f"partition {pid} checkpoint sequence number")
            c.equal(str(cp.get("offset")), str(last.offset), f"partition {pid} checkpoint offset")
    owners = store.list_ownership(ns, args.hub, "$default")
    c.equal(sorted(o["partition_id"] for o in owners), sorted(ids), "one ownership record per partition")
    c.equal(len({o["owner_id"] for o in owners}), 1, "all partitions owned by the one client")
    c.data["explicit_store_seconds"] = round(time.monotonic() - t, 2)

    # 3. New events; a second client on the same store resumes after the checkpoints.
    for k, pid in enumerate(ids):
        prod.send_batch([make_event(total + 10 * k + j) for j in range(10)], partition_id=pid)
    resumed = {pid: [total + 10 * k + j for j in range(10)] for k, pid in enumerate(ids)}
    q = Processor(args, store=store, interval=1)
    c.check(q.wait(lambda q: q.total() >= 10 * len(ids), 30), f"resume: got {q.total()} events, want {10 * len(ids)}")
    time.sleep(0.5)
    verify_partitions(c, "resume from checkpoints", q.events, resumed)

    # 4. A third client joins the same store: the partitions get shared, each taken over by
    #    owner level 0 from owner level 0.
    t = time.monotonic()
    r = Processor(args, store=store, interval=1)

    def owned():
        per = {}
        for o in store.list_ownership(ns, args.hub, "$default"):
            per.setdefault(o["owner_id"], set()).add(o["partition_id"])
        return per

    def balanced(_):
        counts = sorted(len(v) for v in owned().values())
        return len(counts) == 2 and counts[0] == counts[1] == len(ids) // 2 and len(set(r.opened)) == len(ids) // 2

    c.check(r.wait(balanced, 45), f"two clients share the partitions: {owned()!r}")
    c.data["balance_seconds"] = round(time.monotonic() - t, 2)

    def lost(_):
        return sorted(pid for pid, reason in q.closed if "OWNERSHIP_LOST" in reason)

    # The displaced consumers see their links stolen (or their balancer sees the new owner).
    q.wait(lambda _: lost(_) == sorted(set(r.opened)), 20)
    with q.lock:
        c.equal(lost(q), sorted(set(r.opened)), "the first client lost exactly the partitions the second took")
    base = total + 10 * len(ids)
    for k, pid in enumerate(ids):
        prod.send_batch([make_event(base + 10 * k + j) for j in range(10)], partition_id=pid)
    fresh = {pid: [base + 10 * k + j for j in range(10)] for k, pid in enumerate(ids)}

    def collected():
        out = {}
        for proc in (q, r):
            with proc.lock:
                for pid, evs in proc.events.items():
                    out.setdefault(pid, []).extend(e for e in evs if e.properties.get(b"i") >= base)
        return out

    c.check(
        q.wait(lambda _: sum(len(v) for v in collected().values()) >= 10 * len(ids), 30),
        "the two clients together receive every new event",
    )
    time.sleep(1.0)  # duplicates would show up now
    merged = collected()
    verify_partitions(c, "after the handover", merged, fresh)
    q.close()
    r.close()
    prod.close()
    if c.failures:
        c.data["history"] = {
            name: {
                "opened": proc.opened,
                "closed": proc.closed,
                "after": {pid: [e.sequence_number for e in evs if e.properties.get(b"i") >= base] for pid, evs in proc.events.items()},
            }
            for name, proc in (("first", q), ("second", r))
        }
    c.data["errors_seen_during_handover"] = [repr(e)[:160] for e in q.errors + r.errors][:4]


run("processor", main)
