//! A client engine and a server engine joined in memory, with no sockets, no runtime and no
//! clock: `N` messages of `SIZE` bytes sent unsettled with `WINDOW` in flight, each accepted by
//! the server. What it costs is the engine's own work per message (framing, windows, credit,
//! reassembly, dispositions), which `scripts/engine_instructions.sh` counts with callgrind —
//! a figure that does not move with the machine's load.
//!
//!     cargo run --release --example engine_pair -- N SIZE WINDOW

use bytes::Bytes;
use eventhubs::amqp::engine::{
    Connection, ConnectionConfig, Event, LinkAcceptance, LinkConfig, SessionConfig,
};
use eventhubs::amqp::types::definitions::Role;
use eventhubs::amqp::types::messaging::{DeliveryState, Target};
use std::time::Instant;

/// Moves bytes both ways until neither engine has anything to write.
fn pump(a: &mut Connection, b: &mut Connection, now: Instant) {
    loop {
        let mut moved = false;
        while let Some(x) = a.poll_transmit() {
            b.handle_bytes(&x, now);
            moved = true;
        }
        while let Some(x) = b.poll_transmit() {
            a.handle_bytes(&x, now);
            moved = true;
        }
        if !moved {
            return;
        }
    }
}

fn arg(args: &[String], i: usize, name: &str, default: usize) -> Result<usize, String> {
    match args.get(i) {
        None => Ok(default),
        Some(a) => a
            .parse()
            .map_err(|_| format!("{name} must be a whole number, got {a:?}")),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n = arg(&args, 0, "N", 20_000)?;
    let size = arg(&args, 1, "SIZE", 100)?;
    let window = arg(&args, 2, "WINDOW", 1000)?.clamp(1, u32::MAX as usize);
    if size > 64 << 20 {
        return Err("SIZE is at most 64 MiB".into());
    }
    let now = Instant::now();
    let mut client = Connection::client(ConnectionConfig::default(), now);
    let mut server = Connection::server(ConnectionConfig::default(), now);
    pump(&mut client, &mut server, now);
    while client.poll_event().is_some() {}
    while server.poll_event().is_some() {}

    let session = client.begin_session(SessionConfig::default())?;
    let link = client.attach(
        session,
        LinkConfig::default()
            .with_name("engine-pair".into())
            .with_role(Role::Sender)
            .with_target(Target::new("queue")),
    )?;
    pump(&mut client, &mut server, now);
    let server_link = std::iter::from_fn(|| server.poll_event())
        .find_map(|e| match e {
            Event::LinkAttachRequested { link, .. } => Some(link),
            _ => None,
        })
        .ok_or("the server saw no attach")?;
    server.accept_link(server_link, LinkAcceptance::default())?;
    server.add_credit(server_link, window as u32);
    pump(&mut client, &mut server, now);
    while client.poll_event().is_some() {}

    let body = Bytes::from(vec![7u8; size]);
    let (mut sent, mut settled, mut received) = (0usize, 0usize, 0usize);
    while settled < n {
        while sent < n && sent - settled < window {
            client.send(link, body.clone(), 0, false)?;
            sent += 1;
        }
        pump(&mut client, &mut server, now);
        while let Some(e) = server.poll_event() {
            if let Event::Delivery { delivery, .. } = e {
                received += delivery.payload.len();
                let accepted = Some(DeliveryState::Accepted(Default::default()));
                server.settle(server_link, delivery.delivery_id, accepted);
                server.add_credit(server_link, 1);
            }
        }
        pump(&mut client, &mut server, now);
        while let Some(e) = client.poll_event() {
            if matches!(e, Event::Outcome { .. }) {
                settled += 1;
            }
        }
        if client.is_closed() || server.is_closed() {
            return Err("an engine closed the connection".into());
        }
    }
    println!("{n} messages of {size} B settled, {received} payload bytes received");
    Ok(())
}
