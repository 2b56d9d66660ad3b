//! `Emulator::start` refuses entities the emulator cannot serve, with the errors the JSON
//! config loader gives for the same mistake (only the field's spelling differs), instead of
//! starting and failing later (a hub with 0 partitions used to panic on the first send).

mod emulator_support;
mod support;

use emulator_support::*;
use eventhubs::emulator::{
    config::MAX_PARTITIONS, Emulator, EmulatorError, EmulatorOptions, EntityConfig, HubConfig,
};
use support::{emulator_with, init_tracing};

fn hub(name: &str, partitions: u32, groups: &[&str]) -> HubConfig {
    HubConfig::new(name.into(), partitions)
        .with_consumer_groups(groups.iter().map(|g| (*g).to_owned()).collect())
}

/// The error `Emulator::start` gives for these hubs.
async fn refused(hubs: Vec<HubConfig>) -> String {
    init_tracing();
    let options =
        EmulatorOptions::ephemeral().with_entities(EntityConfig::default().with_hubs(hubs));
    match Emulator::start(options).await {
        Ok(em) => panic!("started on {} with invalid entities", em.local_addr()),
        Err(EmulatorError::Config(e)) => e.0,
        Err(e) => panic!("refused for another reason: {e}"),
    }
}

/// The error the JSON loader gives for one namespace with these entities.
fn loader_error(entities: &str) -> String {
    let json = format!(r#"{{"UserConfig":{{"NamespaceConfig":[{{"Entities":{entities}}}]}}}}"#);
    EntityConfig::from_json(&json)
        .expect_err("the loader refuses it too")
        .0
}

/// Both errors name their field (each in its own spelling) and then say the same thing.
fn same_after_field(from_start: &str, start_field: &str, from_loader: &str, json_field: &str) {
    let a = from_start
        .strip_prefix(start_field)
        .unwrap_or_else(|| panic!("{from_start:?} starts with {start_field:?}"));
    let b = from_loader
        .strip_prefix(json_field)
        .unwrap_or_else(|| panic!("{from_loader:?} starts with {json_field:?}"));
    assert_eq!(a, b, "start: {from_start:?}, loader: {from_loader:?}");
}

#[tokio::test]
async fn zero_partitions_are_refused_at_start() {
    let e = refused(vec![hub("eh1", 0, &["$default"])]).await;
    same_after_field(
        &e,
        "EntityConfig.hubs[0].partition_count",
        &loader_error(r#"[{"Name":"eh1","PartitionCount":0}]"#),
        "UserConfig.NamespaceConfig[0].Entities[0].PartitionCount",
    );
    assert!(
        e.contains(&format!("from 1 to {MAX_PARTITIONS}, not 0")),
        "{e}"
    );
}

#[tokio::test]
async fn too_many_partitions_are_refused_at_start() {
    let n = MAX_PARTITIONS + 1;
    let e = refused(vec![hub("eh1", 4, &[]), hub("eh2", n, &[])]).await;
    same_after_field(
        &e,
        "EntityConfig.hubs[1].partition_count",
        &loader_error(&format!(
            r#"[{{"Name":"eh1","PartitionCount":4}},{{"Name":"eh2","PartitionCount":{n}}}]"#
        )),
        "UserConfig.NamespaceConfig[0].Entities[1].PartitionCount",
    );
}

#[tokio::test]
async fn no_hub_is_refused_at_start() {
    let e = refused(Vec::new()).await;
    same_after_field(
        &e,
        "EntityConfig.hubs",
        &loader_error("[]"),
        "UserConfig.NamespaceConfig[].Entities",
    );
    assert!(e.ends_with("defines no event hub"), "{e}");
}

#[tokio::test]
async fn unusable_hub_names_are_refused_at_start() {
    for name in ["", "a/b"] {
        let e = refused(vec![hub(name, 1, &[])]).await;
        same_after_field(
            &e,
            "EntityConfig.hubs[0].name",
            &loader_error(&format!(r#"[{{"Name":{name:?},"PartitionCount":1}}]"#)),
            "UserConfig.NamespaceConfig[0].Entities[0].Name",
        );
        assert!(e.contains("must be non-empty and contain no '/'"), "{e}");
    }
}

#[tokio::test]
async fn a_hub_named_twice_is_refused_at_start() {
    let e = refused(vec![hub("eh1", 1, &[]), hub("EH1", 2, &[])]).await;
    same_after_field(
        &e,
        "EntityConfig.hubs[1].name",
        &loader_error(r#"[{"Name":"eh1","PartitionCount":1},{"Name":"EH1","PartitionCount":2}]"#),
        "UserConfig.NamespaceConfig[0].Entities[1].Name",
    );
    assert!(e.ends_with("is defined twice"), "{e}");
}

#[tokio::test]
async fn unusable_consumer_group_names_are_refused_at_start() {
    for group in ["", "x/y"] {
        let e = refused(vec![hub("eh1", 1, &["cg1", group])]).await;
        same_after_field(
            &e,
            "EntityConfig.hubs[0].consumer_groups[1]",
            &loader_error(&format!(
                r#"[{{"Name":"eh1","PartitionCount":1,"ConsumerGroups":[{{"Name":"cg1"}},{{"Name":{group:?}}}]}}]"#
            )),
            "UserConfig.NamespaceConfig[0].Entities[0].ConsumerGroups[1].Name",
        );
    }
}

/// The smallest and largest partition counts still start, and a send to the one-partition hub
/// is stored (the path that divided by the partition count).
#[tokio::test]
async fn the_edges_of_the_valid_range_start() {
    let em = emulator_with(EmulatorOptions::ephemeral().with_entities(
        EntityConfig::default().with_hubs(vec![
            hub("one", 1, &["$default"]),
            hub("max", MAX_PARTITIONS, &[]),
        ]),
    ))
    .await;
    let (_conn, session) = authorized(&em).await;
    let sender = attach_sender(&session, "one").await;
    send_event(&sender, &event(&b"to the only partition"[..])).await;
    assert_eq!(
        em.partition_info("one", 0).map(|i| i.last_sequence_number),
        Some(0)
    );
    assert!(em.partition_info("max", MAX_PARTITIONS - 1).is_some());
}
