"""Owner level (epoch) through the official client: a consumer with an owner level takes a
partition from one without (which gets the link-stolen error and receives nothing more); while
it owns the partition, consumers without an owner level and with a lower one are refused; a
higher owner level takes it over in turn."""

import time

from ehtest import Reader, make_event, producer, run

PID = "0"


def stolen(errors):
    return any("stolen" in f"{e!r} {e}".lower() for e in errors)


def send(prod, lo, hi):
    batch = prod.create_batch(partition_id=PID)
    for i in range(lo, hi):
        batch.add(make_event(i))
    prod.send_batch(batch)


def indexes(events):
    return [e.properties.get(b"i") for e in events]


def main(args, c):
    prod = producer(args)
    send(prod, 0, 40)

    a = Reader(args, PID, "-1")
    c.check(a.wait_count(40, 20), "consumer without owner level reads the first 40 events")

    b = Reader(args, PID, 39, inclusive=False, owner_level=1)
    c.check(a.wait(lambda r: r.errors, 15), "the consumer without owner level is told it lost the partition")
    a_events, a_errors = a.snapshot()
    c.check(stolen(a_errors), f"its error is link-stolen: {a_errors!r}")
    c.data["non_owner_error"] = repr(a_errors[0])[:300] if a_errors else None

    send(prod, 40, 70)
    c.check(b.wait_count(30, 20), "the owner receives the events sent after the takeover")
    time.sleep(0.5)
    b_events, b_errors = b.snapshot()
    c.equal(indexes(b_events), list(range(40, 70)), "owner's events")
    c.equal([e.sequence_number for e in b_events], list(range(40, 70)), "owner's sequence numbers")
    c.equal(b_errors, [], "owner's errors")
    a_after, _ = a.snapshot()
    c.equal(indexes(a_after), list(range(40)), "the displaced consumer received nothing after the takeover")

    # While the owner holds it: no owner level, and a lower owner level, are refused.
    for what, level in (("consumer without owner level", None), ("consumer with lower owner level 0", 0)):
        r = Reader(args, PID, "-1", owner_level=level)
        c.check(r.wait(lambda r: r.errors, 15), f"{what} is refused while an owner holds the partition")
        time.sleep(0.3)
        r.close()
        events, errors = r.snapshot()
        c.equal(len(events), 0, f"{what} receives nothing")
        c.data.setdefault("refused", {})[what] = repr(errors[0])[:300] if errors else None

    # A higher owner level takes the partition from the owner.
    e = Reader(args, PID, 69, inclusive=False, owner_level=2)
    c.check(b.wait(lambda r: r.errors, 15), "owner level 1 is told it lost the partition to owner level 2")
    c.check(stolen(b.snapshot()[1]), f"its error is link-stolen: {b.snapshot()[1]!r}")
    send(prod, 70, 80)
    c.check(e.wait_count(10, 20), "owner level 2 receives the next events")
    time.sleep(0.5)
    e_events, e_errors = e.snapshot()
    c.equal(indexes(e_events), list(range(70, 80)), "owner level 2 events")
    c.equal(e_errors, [], "owner level 2 errors")
    c.equal(indexes(b.snapshot()[0]), list(range(40, 70)), "owner level 1 received nothing after losing the partition")

    for r in (a, b, e):
        r.close()
    prod.close()
    c.data["closed_reasons"] = {"no_owner_level": a.closed, "owner_level_1": b.closed}


run("takeover", main)
