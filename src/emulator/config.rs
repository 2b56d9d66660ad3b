//! Emulator entities, in the shape of Microsoft's Event Hubs emulator config file:
//! `UserConfig.NamespaceConfig[].Entities[]` with `Name`, `PartitionCount`,
//! `ConsumerGroups[].Name`.

use serde::Deserialize;
use std::path::Path;

/// One event hub.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubConfig {
    /// Hub name.
    pub name: String,
    /// Number of partitions (ids `0..n`).
    pub partition_count: u32,
    /// Consumer groups; `$default` is always present.
    pub consumer_groups: Vec<String>,
}

/// A SAS key the `$cbs` node accepts.
#[derive(Clone, PartialEq, Eq)]
pub struct SasKey {
    /// Key name (`skn`).
    pub name: String,
    /// Key text.
    pub key: String,
}

impl std::fmt::Debug for SasKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SasKey")
            .field("name", &self.name)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// Everything the emulator serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntityConfig {
    /// Namespace name (informational).
    pub namespace: String,
    /// The hubs.
    pub hubs: Vec<HubConfig>,
    /// Accepted SAS keys.
    pub keys: Vec<SasKey>,
}

/// The default key name, as Microsoft's emulator has it.
pub const DEFAULT_KEY_NAME: &str = "RootManageSharedAccessKey";
/// The default key, as Microsoft's emulator has it.
pub const DEFAULT_KEY: &str = "SAS_KEY_VALUE";

impl Default for EntityConfig {
    /// Hub `eh1` with 4 partitions and consumer groups `$default` and `cg1`.
    fn default() -> Self {
        EntityConfig {
            namespace: "emulatorns1".into(),
            hubs: vec![HubConfig {
                name: "eh1".into(),
                partition_count: 4,
                consumer_groups: vec!["$default".into(), "cg1".into()],
            }],
            keys: vec![SasKey {
                name: DEFAULT_KEY_NAME.into(),
                key: DEFAULT_KEY.into(),
            }],
        }
    }
}

/// A config file problem, naming the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("emulator config: {0}")]
pub struct ConfigError(pub String);

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct File {
    user_config: UserConfig,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UserConfig {
    namespace_config: Vec<Namespace>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Namespace {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    r#type: Option<String>,
    entities: Vec<Entity>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Entity {
    name: String,
    partition_count: serde_json::Value,
    #[serde(default)]
    consumer_groups: Vec<Group>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Group {
    name: String,
}

/// Largest partition count accepted (the service's maximum on dedicated tiers).
pub const MAX_PARTITIONS: u32 = 2048;

impl EntityConfig {
    /// Reads a config file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
        Self::from_json(&text)
    }

    /// Parses config JSON; errors name the offending field.
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        let file: File = serde_json::from_str(text).map_err(|e| ConfigError(e.to_string()))?;
        let mut hubs: Vec<HubConfig> = Vec::new();
        let mut namespace = String::from("emulatorns1");
        for (ni, ns) in file.user_config.namespace_config.iter().enumerate() {
            if let Some(t) = &ns.r#type {
                if !t.eq_ignore_ascii_case("eventhub") {
                    return Err(ConfigError(format!(
                        "UserConfig.NamespaceConfig[{ni}].Type is {t:?}; only \"EventHub\" is served"
                    )));
                }
            }
            if let Some(n) = &ns.name {
                namespace = n.clone();
            }
            for (ei, e) in ns.entities.iter().enumerate() {
                let at = format!("UserConfig.NamespaceConfig[{ni}].Entities[{ei}]");
                if e.name.is_empty() || e.name.contains('/') {
                    return Err(ConfigError(format!(
                        "{at}.Name {:?} must be non-empty and contain no '/'",
                        e.name
                    )));
                }
                let count = match &e.partition_count {
                    serde_json::Value::Number(n) => n.as_u64(),
                    serde_json::Value::String(s) => s.parse().ok(),
                    _ => None,
                }
                .filter(|&n| (1..=u64::from(MAX_PARTITIONS)).contains(&n))
                .ok_or_else(|| {
                    ConfigError(format!(
                        "{at}.PartitionCount must be a whole number from 1 to {MAX_PARTITIONS}, not {}",
                        e.partition_count
                    ))
                })?;
                if hubs.iter().any(|h| h.name.eq_ignore_ascii_case(&e.name)) {
                    return Err(ConfigError(format!(
                        "{at}.Name {:?} is defined twice",
                        e.name
                    )));
                }
                let mut groups = vec!["$default".to_owned()];
                for (gi, g) in e.consumer_groups.iter().enumerate() {
                    if g.name.is_empty() || g.name.contains('/') {
                        return Err(ConfigError(format!(
                            "{at}.ConsumerGroups[{gi}].Name {:?} must be non-empty and contain no '/'",
                            g.name
                        )));
                    }
                    if !groups.iter().any(|x| x.eq_ignore_ascii_case(&g.name)) {
                        groups.push(g.name.clone());
                    }
                }
                hubs.push(HubConfig {
                    name: e.name.clone(),
                    partition_count: count as u32,
                    consumer_groups: groups,
                });
            }
        }
        if hubs.is_empty() {
            return Err(ConfigError(
                "UserConfig.NamespaceConfig[].Entities defines no event hub".into(),
            ));
        }
        Ok(EntityConfig {
            namespace,
            hubs,
            keys: EntityConfig::default().keys,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_microsofts_shape() {
        let c = EntityConfig::from_json(
            r#"{"UserConfig":{"NamespaceConfig":[{"Type":"EventHub","Name":"emulatorNs1",
            "Entities":[{"Name":"eh1","PartitionCount":"2","ConsumerGroups":[{"Name":"cg1"}]},
                        {"Name":"eh2","PartitionCount":8}]}],
            "LoggingConfig":{"Type":"File"}}}"#,
        )
        .unwrap();
        assert_eq!(c.namespace, "emulatorNs1");
        assert_eq!(c.hubs[0].partition_count, 2);
        assert_eq!(c.hubs[0].consumer_groups, vec!["$default", "cg1"]);
        assert_eq!(c.hubs[1].consumer_groups, vec!["$default"]);
    }

    #[test]
    fn bad_fields_are_named() {
        let e = EntityConfig::from_json(
            r#"{"UserConfig":{"NamespaceConfig":[{"Entities":[{"Name":"eh1","PartitionCount":0}]}]}}"#,
        )
        .unwrap_err();
        assert!(e.0.contains("Entities[0].PartitionCount"), "{e}");
        let e = EntityConfig::from_json(r#"{"UserConfig":{}}"#).unwrap_err();
        assert!(e.0.contains("NamespaceConfig"), "{e}");
        let e = EntityConfig::from_json(
            r#"{"UserConfig":{"NamespaceConfig":[{"Entities":[{"Name":"a/b","PartitionCount":1}]}]}}"#,
        )
        .unwrap_err();
        assert!(e.0.contains("Entities[0].Name"), "{e}");
    }
}
