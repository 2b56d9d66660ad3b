//! Property tests over joined engines: random interleavings of sends, credit, drains, settles
//! and partial pump steps with the byte stream cut into random pieces keep order and settle
//! every delivery exactly once; multi-frame transfers at max-frame-size 512 reassemble exactly.

mod common_engine;

use bytes::Bytes;
use common_engine::*;
use eventhubs::amqp::engine::{ConnectionConfig, Delivery, Event, LinkAcceptance, LinkConfig};
use eventhubs::amqp::types::definitions::Role;
use eventhubs::amqp::types::error::{condition, AmqpError};
use eventhubs::amqp::types::messaging::{
    DeliveryState, Modified, Received, Rejected, Released, Source,
};
use proptest::prelude::*;
use std::collections::{HashMap, VecDeque};

#[derive(Clone, Debug)]
enum Op {
    Send {
        len: usize,
        presettled: bool,
    },
    Credit(u32),
    Drain,
    /// Settle the oldest `n` unsettled deliveries with outcome `kind`.
    Settle {
        n: usize,
        kind: u8,
    },
    /// Report a non-terminal state for the oldest unsettled delivery.
    Progress,
    /// One partial step: a random piece of the bytes in flight each way.
    Step,
    Pump,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0usize..3000, prop::bool::weighted(0.2))
            .prop_map(|(len, presettled)| Op::Send { len, presettled }),
        2 => (1u32..20).prop_map(Op::Credit),
        1 => Just(Op::Drain),
        2 => (1usize..8, 0u8..4).prop_map(|(n, kind)| Op::Settle { n, kind }),
        1 => Just(Op::Progress),
        4 => Just(Op::Step),
        1 => Just(Op::Pump),
    ]
}

fn outcome(kind: u8) -> DeliveryState {
    match kind {
        0 => DeliveryState::Accepted(Default::default()),
        1 => DeliveryState::Rejected(Rejected {
            error: Some(AmqpError::with_description(condition::INVALID_FIELD, "no")),
        }),
        2 => DeliveryState::Released(Released),
        _ => DeliveryState::Modified(Modified {
            delivery_failed: true,
            undeliverable_here: false,
            message_annotations: None,
        }),
    }
}

fn payload(i: usize, len: usize) -> Bytes {
    let mut v = Vec::with_capacity(len);
    let tag = (i as u32).to_be_bytes();
    for j in 0..len {
        v.push(tag[j % 4] ^ (j as u8));
    }
    v.into()
}

struct Model {
    /// (token, payload, presettled) in send order.
    sent: Vec<(u64, Bytes, bool)>,
    received: Vec<Delivery>,
    unsettled: VecDeque<u32>,
    /// Settled outcomes per token, and their states.
    settled: HashMap<u64, Vec<Option<DeliveryState>>>,
    /// The state the server settled each delivery id with.
    expected_state: HashMap<u32, DeliveryState>,
}

impl Model {
    fn absorb(&mut self, p: &mut Pair) {
        for e in p.take_server_events() {
            match e {
                Event::Delivery { delivery, .. } => {
                    if !delivery.settled {
                        self.unsettled.push_back(delivery.delivery_id);
                    }
                    self.received.push(delivery);
                }
                Event::Closed { .. } | Event::SessionEnded { .. } | Event::LinkDetached { .. } => {
                    panic!("server: unexpected {e:?}")
                }
                _ => {}
            }
        }
        for e in p.take_client_events() {
            match e {
                Event::Outcome {
                    delivery,
                    state,
                    settled,
                    ..
                } => {
                    if settled {
                        self.settled.entry(delivery).or_default().push(state);
                    } else {
                        assert!(
                            matches!(state, Some(DeliveryState::Received(_))),
                            "unsettled outcome {state:?}"
                        );
                    }
                }
                Event::Closed { .. } | Event::SessionEnded { .. } | Event::LinkDetached { .. } => {
                    panic!("client: unexpected {e:?}")
                }
                _ => {}
            }
        }
    }
}

fn run(ops: Vec<Op>, max_frame: u32, seed: u64) {
    let server_cfg = ConnectionConfig::default().with_max_frame_size(max_frame);
    let mut p = Pair::opened(ConnectionConfig::default(), server_cfg).chunked(seed);
    p.keep_wire = false;
    let (cs, _) = p.session();
    let (cl, sl) = p.sender_link(cs, "prop");
    let mut m = Model {
        sent: Vec::new(),
        received: Vec::new(),
        unsettled: VecDeque::new(),
        settled: HashMap::new(),
        expected_state: HashMap::new(),
    };
    for op in ops {
        match op {
            Op::Send { len, presettled } => {
                let data = payload(m.sent.len(), len);
                let t = p.client.send(cl, data.clone(), 0, presettled).unwrap();
                m.sent.push((t, data, presettled));
            }
            Op::Credit(n) => p.server.add_credit(sl, n),
            Op::Drain => p.server.drain(sl),
            Op::Settle { n, kind } => {
                for _ in 0..n {
                    let Some(id) = m.unsettled.pop_front() else {
                        break;
                    };
                    let s = outcome(kind);
                    m.expected_state.insert(id, s.clone());
                    p.server.settle(sl, id, Some(s));
                }
            }
            Op::Progress => {
                if let Some(&id) = m.unsettled.front() {
                    let r = DeliveryState::Received(Received {
                        section_number: 0,
                        section_offset: 1,
                    });
                    p.server.disposition(sl, id, Some(r), false);
                }
            }
            Op::Step => {
                p.step();
            }
            Op::Pump => p.pump(),
        }
        m.absorb(&mut p);
    }
    // Finish: enough credit for everything, then settle what is left.
    p.server.add_credit(sl, m.sent.len() as u32 + 1);
    p.pump();
    m.absorb(&mut p);
    while let Some(id) = m.unsettled.pop_front() {
        m.expected_state.insert(id, outcome(0));
        p.server.settle(sl, id, Some(outcome(0)));
    }
    p.pump();
    m.absorb(&mut p);

    // Order and content.
    assert_eq!(m.received.len(), m.sent.len());
    for (d, (_, data, presettled)) in m.received.iter().zip(&m.sent) {
        assert_eq!(&d.payload, data);
        assert_eq!(d.settled, *presettled);
    }
    // Delivery ids are consecutive.
    for (i, d) in m.received.iter().enumerate() {
        assert_eq!(d.delivery_id, i as u32);
    }
    // Exactly one settled outcome per unsettled send, none for pre-settled ones, and the
    // state is the one the server chose.
    for (i, (t, _, presettled)) in m.sent.iter().enumerate() {
        let got = m.settled.remove(t).unwrap_or_default();
        if *presettled {
            assert!(got.is_empty(), "outcome for pre-settled token {t}");
        } else {
            assert_eq!(got.len(), 1, "token {t}: {got:?}");
            let id = m.received[i].delivery_id;
            assert_eq!(got[0].as_ref(), m.expected_state.get(&id));
        }
    }
    assert!(
        m.settled.is_empty(),
        "outcomes for unknown tokens: {:?}",
        m.settled
    );
    assert_eq!(p.client.queued(cl), 0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn interleavings_keep_order_and_settle_once(
        ops in prop::collection::vec(op(), 1..120),
        max_frame in prop_oneof![Just(512u32), 512u32..4096, Just(65536u32)],
        seed in any::<u64>(),
    ) {
        run(ops, max_frame, seed);
    }
}

fn reassembly(len: usize, seed: u64, client_sends: bool) {
    let small = ConnectionConfig::default().with_max_frame_size(512);
    let (ccfg, scfg) = if client_sends {
        (ConnectionConfig::default(), small)
    } else {
        (small, ConnectionConfig::default())
    };
    let mut p = Pair::opened(ccfg, scfg).chunked(seed);
    let (cs, _) = p.session();
    let data = payload(seed as usize, len);
    let got = if client_sends {
        let (cl, sl) = p.sender_link(cs, "big");
        p.server.add_credit(sl, 1);
        p.pump();
        p.client.send(cl, data.clone(), 0, false).unwrap();
        p.pump();
        deliveries(&p.take_server_events())
    } else {
        let (cl, sl) = p.link(
            cs,
            LinkConfig::default()
                .with_name("big-in".into())
                .with_role(Role::Receiver)
                .with_source(Source::new("q")),
            LinkAcceptance::default().with_source(Source::new("q")),
        );
        p.client.add_credit(cl, 1);
        p.pump();
        p.server.send(sl, data.clone(), 0, false).unwrap();
        p.pump();
        deliveries(&p.take_client_events())
    };
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].payload.len(), data.len());
    assert!(got[0].payload == data, "payload differs");
    let (wire, frames) = if client_sends {
        (p.c2s.largest, p.c2s.take())
    } else {
        (p.s2c.largest, p.s2c.take())
    };
    assert!(wire <= 512, "largest frame {wire}");
    let transfers = frames
        .iter()
        .filter(|w| {
            matches!(
                w.performative(),
                Some(eventhubs::amqp::types::transport::Performative::Transfer(_))
            )
        })
        .count();
    // At least 400 payload bytes fit each 512-byte frame.
    assert!(
        transfers <= len / 400 + 1,
        "{transfers} frames for {len} bytes"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn multi_frame_transfers_reassemble_exactly(
        len in prop_oneof![0usize..2048, 0usize..200_000],
        seed in any::<u64>(),
        client_sends in any::<bool>(),
    ) {
        reassembly(len, seed, client_sends);
    }
}
