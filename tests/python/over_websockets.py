"""The official client over AMQP-over-WebSockets (`TransportType.AmqpOverWebsocket`) against
the emulator's WebSocket port, reached through `custom_endpoint_address`: hub properties,
50 events sent in a batch to partition 0, and the same 50 read back from earliest."""

import threading

from ehtest import run
from azure.eventhub import EventData, EventHubConsumerClient, EventHubProducerClient, TransportType

COUNT = 50


def ws_kwargs(args):
    return dict(
        eventhub_name=args.hub,
        transport_type=TransportType.AmqpOverWebsocket,
        custom_endpoint_address=f"sb://{args.ws_endpoint}",
    )


def main(args, c):
    prod = EventHubProducerClient.from_connection_string(args.conn, **ws_kwargs(args))
    c.equal(prod.get_eventhub_properties()["eventhub_name"], args.hub, "hub name over WebSockets")
    batch = prod.create_batch(partition_id="0")
    for i in range(COUNT):
        batch.add(EventData(f"ws-{i}"))
    prod.send_batch(batch)
    prod.close()

    cons = EventHubConsumerClient.from_connection_string(
        args.conn, consumer_group="$default", **ws_kwargs(args)
    )
    got, errors, done = [], [], threading.Event()

    def on_batch(_ctx, events):
        got.extend(e.body_as_str() for e in events)
        if len(got) >= COUNT:
            done.set()

    def on_error(_ctx, err):
        errors.append(repr(err))

    t = threading.Thread(
        target=cons.receive_batch,
        kwargs=dict(
            on_event_batch=on_batch,
            on_error=on_error,
            partition_id="0",
            starting_position="-1",
            max_wait_time=1,
        ),
        daemon=True,
    )
    t.start()
    done.wait(30)
    cons.close()
    t.join(10)
    c.equal(got, [f"ws-{i}" for i in range(COUNT)], "the events read back over WebSockets")
    c.equal(errors, [], "no receive errors")
    c.data.update(sent=COUNT, received=len(got))


run("websocket", main)
