#!/usr/bin/env node
// A minimal Event Hubs on the npm package rhea, for tests/rhea_termini.rs: it answers CBS
// put-token and $management READ, stores what is sent to the hub or a partition, and serves
// consumers from a selector position. Like many rhea-based servers, it answers each attach by
// echoing the client's own termini back (set_source(link.source) / set_target(link.target)); for
// a terminus the client left null, rhea (3.0.5) throws a TypeError there, and the connection is
// dropped, as the third-party server this stands in for does.
//
//   NODE_PATH=<dir with rhea> node eventhub_server.js [--hub NAME] [--partitions N]
//
// stdout, one JSON object a line: first {"port": N}; then {"attach": {...}} for every link the
// client attaches and {"dropped": "why"} for every connection dropped on an error. The server
// exits when its stdin closes, so it never outlives the test that started it.
'use strict';
const rhea = require('rhea');

const args = process.argv.slice(2);
function arg(name, dflt) {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
}
const HUB = arg('--hub', 'eh1');
const PARTITIONS = parseInt(arg('--partitions', '2'), 10);
const BATCH_FORMAT = 0x80013700;
const CREATED = new Date(Date.UTC(2026, 0, 1));

function emit(o) {
  process.stdout.write(JSON.stringify(o) + '\n');
}

// Per partition: the stored events (rhea message objects with their annotations) and the senders
// waiting for more.
const partitions = [];
for (let i = 0; i < PARTITIONS; i++) partitions.push({ events: [], readers: new Set() });
let roundRobin = 0;

function partitionOf(address) {
  const m = /^([^/]+)\/(?:ConsumerGroups\/[^/]+\/)?Partitions\/(\d+)$/.exec(address);
  if (!m || m[1] !== HUB) return undefined;
  const id = parseInt(m[2], 10);
  return id < PARTITIONS ? id : undefined;
}

function store(id, event) {
  const p = partitions[id];
  const seq = p.events.length;
  event.message_annotations = Object.assign({}, event.message_annotations, {
    'x-opt-sequence-number': rhea.types.wrap_long(seq),
    'x-opt-offset': String(seq),
    'x-opt-enqueued-time': new Date(),
  });
  p.events.push(event);
  for (const r of p.readers) pump(r);
}

// The events of a delivery: one message, or each message packed in a batch's data sections.
function eventsOf(context) {
  if (context.format === BATCH_FORMAT) {
    const batch = rhea.message.decode(context.message);
    const body = batch.body;
    const parts = body && body.multiple ? body.content : [body && body.content];
    return parts.map((b) => rhea.message.decode(b));
  }
  return [context.message];
}

// Where a consumer starts: the sequence number after the selector's, or 0 (earliest; anything
// this server does not parse also starts at the beginning).
function startOf(source) {
  const filter = JSON.stringify((source && source.filter) || null);
  const m = /x-opt-(?:sequence-number|offset)\s*(>=?)\s*'(-?\d+)'/.exec(filter);
  if (!m) return 0;
  const n = parseInt(m[2], 10);
  return Math.max(0, m[1] === '>=' ? n : n + 1);
}

function pump(reader) {
  if (!reader.ready) return;
  const p = partitions[reader.partition];
  while (reader.sender.sendable() && reader.next < p.events.length) {
    reader.sender.send(p.events[reader.next++]);
  }
}

function reply(context, status, body) {
  const request = context.message;
  const to = context.connection.replyLinks.get(request.reply_to);
  if (!to) throw new Error('no reply link for ' + request.reply_to);
  to.send({
    correlation_id: request.message_id,
    application_properties: {
      'status-code': rhea.types.wrap_int(status),
      'status-description': status === 200 ? 'OK' : 'Not Found',
    },
    body,
  });
}

function management(request) {
  const props = request.application_properties || {};
  if (props.operation !== 'READ' || props.name !== HUB) return [404, null];
  if (props.type === 'com.microsoft:eventhub') {
    const ids = partitions.map((_, i) => String(i));
    return [200, { name: HUB, created_at: CREATED, partition_ids: ids }];
  }
  const id = partitionOf(HUB + '/Partitions/' + props.partition);
  if (props.type !== 'com.microsoft:partition' || id === undefined) return [404, null];
  const events = partitions[id].events;
  const last = events.length - 1;
  return [200, {
    name: HUB,
    partition: String(id),
    begin_sequence_number: rhea.types.wrap_long(events.length ? 0 : -1),
    last_enqueued_sequence_number: rhea.types.wrap_long(last),
    last_enqueued_offset: String(last),
    last_enqueued_time_utc: last >= 0 ? events[last].message_annotations['x-opt-enqueued-time'] : CREATED,
    is_partition_empty: events.length === 0,
  }];
}

// The echo throws for a null terminus; the addresses are what the test checks.
function echoTermini(link) {
  link.set_source(link.source);
  link.set_target(link.target);
  return { source: link.source.address, target: link.target.address };
}

// Runs an event handler; an error drops the client's connection (socket closed, no AMQP close).
function guarded(handler) {
  return (context) => {
    try {
      handler(context);
    } catch (e) {
      emit({ dropped: String(e && e.message) });
      if (context.connection.socket) context.connection.socket.destroy();
    }
  };
}

const container = rhea.create_container({ id: 'rhea-eventhub' });

container.on('connection_open', (context) => {
  context.connection.replyLinks = new Map();
});

// The client's sender: our receiving end.
container.on('receiver_open', guarded((context) => {
  const link = context.receiver;
  const t = echoTermini(link);
  emit({ attach: { name: link.name, role: 'sender', source: t.source, target: t.target } });
}));

// The client's receiver: our sending end.
container.on('sender_open', guarded((context) => {
  const link = context.sender;
  const t = echoTermini(link);
  emit({ attach: { name: link.name, role: 'receiver', source: t.source, target: t.target } });
  if (t.source === '$cbs' || t.source === '$management') {
    context.connection.replyLinks.set(t.target, link);
    return;
  }
  const id = partitionOf(t.source);
  if (id === undefined) throw new Error('no such entity: ' + t.source);
  const reader = { sender: link, partition: id, next: startOf(link.source), ready: false };
  link.reader = reader;
  partitions[id].readers.add(reader);
  // rhea writes our attach on a later tick, but fires 'sendable' for credit that came with the
  // client's attach at once: a transfer sent then would precede the attach.
  setImmediate(() => {
    reader.ready = true;
    pump(reader);
  });
}));

container.on('sendable', guarded((context) => {
  if (context.sender.reader) pump(context.sender.reader);
}));

function forget(context) {
  const r = context.sender && context.sender.reader;
  if (r) partitions[r.partition].readers.delete(r);
}
container.on('sender_close', forget);
container.on('disconnected', (context) => {
  for (const p of partitions) {
    for (const r of p.readers) if (r.sender.connection === context.connection) p.readers.delete(r);
  }
});

container.on('message', guarded((context) => {
  const address = context.receiver.target.address;
  if (address === '$cbs') {
    const ok = (context.message.application_properties || {}).operation === 'put-token';
    reply(context, ok ? 200 : 404, null);
  } else if (address === '$management') {
    const [status, body] = management(context.message);
    reply(context, status, body);
  } else {
    const id = address === HUB ? roundRobin++ % PARTITIONS : partitionOf(address);
    if (id === undefined) throw new Error('no such entity: ' + address);
    for (const event of eventsOf(context)) store(id, event);
  }
}));

container.on('error', (e) => emit({ dropped: String(e && e.message) }));

const server = container.listen({ host: '127.0.0.1', port: 0 });
server.on('listening', () => emit({ port: server.address().port }));
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
