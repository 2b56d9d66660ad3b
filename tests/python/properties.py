"""Hub and partition properties through the official client: on an empty hub, after sending
to one partition (checked against the events read back), and the refusals for an unknown
partition, an unknown hub and a wrong key."""

import datetime

from ehtest import Reader, consumer, make_event, producer, run
from azure.eventhub import EventHubProducerClient


def main(args, c):
    prod = producer(args)
    cons = consumer(args)
    now = datetime.datetime.now(datetime.timezone.utc)

    hp = prod.get_eventhub_properties()
    c.equal(hp["eventhub_name"], args.hub, "hub name")
    ids = hp["partition_ids"]
    c.check(len(ids) >= 2, f"at least two partitions: {ids!r}")
    c.equal(ids, [str(n) for n in range(len(ids))], "partition ids are 0..n-1")
    created = hp["created_at"]
    c.check(
        isinstance(created, datetime.datetime)
        and now - datetime.timedelta(days=1) < created <= now + datetime.timedelta(seconds=5),
        f"created_at is a recent time: {created!r}",
    )
    c.equal(cons.get_eventhub_properties()["partition_ids"], ids, "consumer sees the same partition ids")
    c.equal(prod.get_partition_ids(), ids, "producer get_partition_ids")
    c.equal(cons.get_partition_ids(), ids, "consumer get_partition_ids")

    for pid in ids:
        pp = cons.get_partition_properties(pid)
        c.equal(pp["eventhub_name"], args.hub, f"partition {pid} hub name")
        c.equal(pp["id"], pid, f"partition {pid} id")
        c.equal(pp["is_empty"], True, f"partition {pid} is empty at first")
        c.equal(pp["last_enqueued_sequence_number"], -1, f"partition {pid} last sequence number when empty")

    # Four events into the last partition: a batch of three and one single.
    target = ids[-1]
    batch = prod.create_batch(partition_id=target)
    for i in range(3):
        batch.add(make_event(i))
    prod.send_batch(batch)
    prod.send_event(make_event(3), partition_id=target)

    reader = Reader(args, target, "-1")
    c.check(reader.wait_count(4, 20), "read back the four events")
    reader.close()
    events, _ = reader.snapshot()
    last = events[3] if len(events) >= 4 else None

    for pid in ids:
        pp = prod.get_partition_properties(pid)
        if pid != target:
            c.equal(pp["is_empty"], True, f"partition {pid} still empty")
            continue
        c.equal(pp["is_empty"], False, "target partition not empty")
        c.equal(pp["beginning_sequence_number"], 0, "beginning sequence number")
        c.equal(pp["last_enqueued_sequence_number"], 3, "last sequence number")
        if last is not None:
            c.equal(pp["last_enqueued_offset"], last.offset, "last offset = offset of the last event")
            c.equal(pp["last_enqueued_time_utc"], last.enqueued_time, "last enqueued time = that of the last event")
        c.data["partition_properties"] = pp

    # Refusals, without retries so that they come quickly.
    def raises(what, f):
        try:
            f()
        except Exception as e:  # noqa: BLE001
            c.data.setdefault("refusals", {})[what] = f"{type(e).__name__}: {e}"[:200]
            return c.check(True, what)
        return c.check(False, f"{what}: no error raised")

    quick = EventHubProducerClient.from_connection_string(args.conn, eventhub_name=args.hub, retry_total=0)
    raises("unknown partition", lambda: quick.get_partition_properties("99"))
    quick.close()
    other = EventHubProducerClient.from_connection_string(args.conn, eventhub_name="no-such-hub", retry_total=0)
    raises("unknown hub", other.get_eventhub_properties)
    other.close()
    bad = args.conn.replace("SharedAccessKey=", "SharedAccessKey=wrong")
    wrong = EventHubProducerClient.from_connection_string(bad, eventhub_name=args.hub, retry_total=0)
    raises("wrong key", wrong.get_eventhub_properties)
    wrong.close()

    prod.close()
    cons.close()
    c.data["partitions"] = len(ids)


run("properties", main)
