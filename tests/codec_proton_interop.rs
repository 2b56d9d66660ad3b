//! Proton reads what we write, and we read what Proton writes, for a corpus of fixed values
//! (every vector, the Event Hubs shapes, our compact compound forms) and a few hundred random
//! ones. Needs the Proton oracle: set `EVENTHUBS_PROTON_ORACLE` to its command, e.g.
//! `../shared/peers/proton-oracle.py` (`.ci/run` does). Without it the tests say so and pass.

mod common;
mod support;

use bytes::Bytes;
use common::{hex, json_to_value, oracle, same, shapes, strategy, unhex, value_to_json};
use eventhubs::amqp::codec::{
    decode_exact, encode_to_vec, Array, Descriptor, ElementType, Symbol, Value,
};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, TestRunner};
use serde_json::Value as Json;

fn vector_values() -> Vec<Value> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/proton/vectors.json");
    let all: Vec<Json> =
        serde_json::from_str(&std::fs::read_to_string(path).expect("vectors.json")).expect("JSON");
    let mut out = Vec::new();
    for v in &all {
        let typed = &v["typed_json"];
        if v["sequence"] == Json::Bool(true) {
            out.extend(
                typed
                    .as_array()
                    .expect("sequence")
                    .iter()
                    .map(|x| json_to_value(x).expect("typed")),
            );
        } else {
            out.push(json_to_value(typed).expect("typed"));
        }
    }
    out
}

fn arr(e: ElementType, items: Vec<Value>) -> Value {
    Value::Array(Array::new(e, items).expect("well-typed"))
}

/// Values that exercise the forms Proton itself never writes: list8/map8/array8, small
/// element constructors in arrays (smallint, smalluint, smallulong, smalllong, sym8, vbin8),
/// list0 inside compounds, the 8/32-bit boundaries.
fn compact_forms() -> Vec<Value> {
    let mut nested = Value::List(vec![]);
    for i in 0..30 {
        nested = Value::List(vec![Value::Uint(i), nested]);
    }
    vec![
        Value::List(vec![Value::List(vec![]), Value::Map(vec![]), Value::Null]),
        Value::List(vec![Value::Null; 254]),
        Value::List(vec![Value::Null; 255]),
        Value::List(vec![Value::Null; 256]),
        Value::Map(
            (0..127u32)
                .map(|i| (Value::Uint(i), Value::Bool(i % 2 == 0)))
                .collect(),
        ),
        Value::Map(
            (0..128u32)
                .map(|i| (Value::Uint(i), Value::Bool(i % 2 == 0)))
                .collect(),
        ),
        arr(ElementType::Int, vec![Value::Int(-128), Value::Int(127)]),
        arr(ElementType::Long, vec![Value::Long(-1), Value::Long(0)]),
        arr(ElementType::Uint, vec![Value::Uint(0), Value::Uint(255)]),
        arr(ElementType::Ulong, vec![Value::Ulong(0), Value::Ulong(255)]),
        arr(
            ElementType::Symbol,
            vec![Value::Symbol(Symbol::from("a")); 80],
        ),
        arr(
            ElementType::Binary,
            vec![Value::Binary(Bytes::from_static(b"xy"))],
        ),
        arr(
            ElementType::Binary,
            vec![Value::Binary(Bytes::from(vec![1u8; 255]))],
        ),
        arr(ElementType::String, vec![Value::from("é".repeat(128))]),
        arr(
            ElementType::List,
            vec![Value::List(vec![]), Value::List(vec![Value::Long(1)])],
        ),
        arr(
            ElementType::Map,
            vec![Value::Map(vec![(Value::from("k"), Value::Null)])],
        ),
        arr(
            ElementType::Array,
            vec![
                arr(ElementType::Int, vec![Value::Int(1)]),
                arr(ElementType::Long, vec![Value::Long(1 << 40)]),
                arr(ElementType::Symbol, vec![]),
            ],
        ),
        Value::Array(
            Array::described(
                Some(Descriptor::Symbol(Symbol::from("x:y"))),
                ElementType::Uint,
                vec![Value::Uint(1), Value::Uint(2)],
            )
            .expect("well-typed"),
        ),
        Value::Array(
            Array::described(
                Some(Descriptor::Code(0x24)),
                ElementType::List,
                vec![Value::List(vec![]), Value::List(vec![])],
            )
            .expect("well-typed"),
        ),
        Value::described(Descriptor::Code(0), Value::Null),
        nested,
    ]
}

fn random_values(n: usize) -> Vec<Value> {
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        proptest::test_runner::TestRng::deterministic_rng(
            proptest::test_runner::RngAlgorithm::ChaCha,
        ),
    );
    let s = strategy::value();
    (0..n)
        .map(|_| s.new_tree(&mut runner).expect("value").current())
        .collect()
}

fn corpus() -> Vec<Value> {
    let mut c = vector_values();
    c.push(shapes::transfer());
    c.push(shapes::attach());
    c.extend(shapes::event_message());
    c.extend(compact_forms());
    c.extend(random_values(400));
    c
}

/// Runs the oracle over the whole corpus in one process; on a failure, one by one to name the
/// value Proton cannot read.
fn proton_decode(cmd: &[String], hexes: &[String]) -> Vec<Json> {
    match oracle::decode_each(cmd, hexes) {
        Ok(out) => out,
        Err(batch_err) => {
            for h in hexes {
                if let Err(e) = oracle::decode_each(cmd, std::slice::from_ref(h)) {
                    panic!("Proton cannot decode our encoding {h}: {e}");
                }
            }
            panic!("oracle batch failed: {batch_err}");
        }
    }
}

#[test]
fn proton_decodes_our_encodings() {
    let Some(cmd) = oracle::command() else {
        return;
    };
    let values = corpus();
    let hexes: Vec<String> = values.iter().map(|v| hex(&encode_to_vec(v))).collect();
    let decoded = proton_decode(&cmd, &hexes);
    let mut failures = Vec::new();
    for ((v, h), j) in values.iter().zip(&hexes).zip(&decoded) {
        match json_to_value(j) {
            Ok(p) if same(&p, v) => {}
            Ok(p) => failures.push(format!(
                "we wrote {h} for {}\n  Proton read {}",
                value_to_json(v),
                value_to_json(&p)
            )),
            Err(e) => failures.push(format!("Proton's JSON {j} for {h}: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} differ:\n{}",
        failures.len(),
        values.len(),
        failures.join("\n")
    );
    println!("Proton decoded all {} of our encodings", values.len());
}

#[test]
fn we_decode_proton_encodings_of_random_values() {
    let Some(cmd) = oracle::command() else {
        return;
    };
    let mut values = random_values(400);
    values.extend(compact_forms());
    let inputs: Vec<String> = values
        .iter()
        .map(|v| value_to_json(v).to_string())
        .collect();
    let hexes = oracle::run(&cmd, "enc", &inputs).expect("oracle enc");
    assert_eq!(hexes.len(), values.len());
    let mut failures = Vec::new();
    for ((v, h), input) in values.iter().zip(&hexes).zip(&inputs) {
        match decode_exact::<Value>(Bytes::from(unhex(h))) {
            Ok(ours) if same(&ours, v) => {
                // and our encoding is never longer than Proton's
                if encode_to_vec(v).len() > h.len() / 2 {
                    failures.push(format!("ours longer than Proton's {h} for {input}"));
                }
            }
            Ok(ours) => failures.push(format!(
                "Proton wrote {h} for {input}\n  we read {}",
                value_to_json(&ours)
            )),
            Err(e) => failures.push(format!("Proton wrote {h} for {input}\n  we fail: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} differ:\n{}",
        failures.len(),
        values.len(),
        failures.join("\n")
    );
    println!("decoded all {} Proton encodings", values.len());
}
