//! Emulator entities, in the shape of Microsoft's Event Hubs emulator config file:
//! `UserConfig.NamespaceConfig[].Entities[]` with `Name`, `PartitionCount`,
//! `ConsumerGroups[].Name`.

use std::path::Path;

/// One event hub.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HubConfig {
    /// Hub name.
    pub name: String,
    /// Number of partitions (ids `0..n`).
    pub partition_count: u32,
    /// Consumer groups; `$default` is always present.
    pub consumer_groups: Vec<String>,
}

/// Builder-style setters (the struct is `#[non_exhaustive]`: build it from its default or
/// constructor and these).
impl HubConfig {
    /// A hub named `name` with `partition_count` partitions and the `$default` consumer group.
    pub fn new(name: String, partition_count: u32) -> Self {
        HubConfig {
            name,
            partition_count,
            consumer_groups: vec!["$default".into()],
        }
    }

    /// Sets `name`: hub name.
    pub fn with_name(mut self, value: String) -> Self {
        self.name = value;
        self
    }

    /// Sets `partition_count`: number of partitions (ids `0..n`).
    pub fn with_partition_count(mut self, value: u32) -> Self {
        self.partition_count = value;
        self
    }

    /// Sets `consumer_groups`: consumer groups; `$default` is always present.
    pub fn with_consumer_groups(mut self, value: Vec<String>) -> Self {
        self.consumer_groups = value;
        self
    }
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
#[non_exhaustive]
pub struct EntityConfig {
    /// Namespace name (informational).
    pub namespace: String,
    /// The hubs.
    pub hubs: Vec<HubConfig>,
    /// Accepted SAS keys.
    pub keys: Vec<SasKey>,
}

/// Builder-style setters (the struct is `#[non_exhaustive]`: build it from its default or
/// constructor and these).
impl EntityConfig {
    /// Sets `namespace`: namespace name (informational).
    pub fn with_namespace(mut self, value: String) -> Self {
        self.namespace = value;
        self
    }

    /// Sets `hubs`: the hubs.
    pub fn with_hubs(mut self, value: Vec<HubConfig>) -> Self {
        self.hubs = value;
        self
    }

    /// Sets `keys`: accepted SAS keys.
    pub fn with_keys(mut self, value: Vec<SasKey>) -> Self {
        self.keys = value;
        self
    }
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

/// The JSON value at `at`, walked by hand so that every error names its field's full path
/// (serde's own errors only give a line and column).
type Json = serde_json::Value;

fn object<'a>(v: &'a Json, at: &str) -> Result<&'a serde_json::Map<String, Json>, ConfigError> {
    v.as_object()
        .ok_or_else(|| ConfigError(format!("{at} must be an object, not {v}")))
}

fn array<'a>(v: &'a Json, at: &str) -> Result<&'a Vec<Json>, ConfigError> {
    v.as_array()
        .ok_or_else(|| ConfigError(format!("{at} must be an array, not {v}")))
}

/// A field that must be present (and not null).
fn required<'a>(
    o: &'a serde_json::Map<String, Json>,
    key: &str,
    at: &str,
) -> Result<&'a Json, ConfigError> {
    match o.get(key) {
        None | Some(Json::Null) => Err(ConfigError(format!("{at}.{key} is missing"))),
        Some(v) => Ok(v),
    }
}

/// A field that may be absent or null.
fn optional<'a>(o: &'a serde_json::Map<String, Json>, key: &str) -> Option<&'a Json> {
    o.get(key).filter(|v| !v.is_null())
}

fn string<'a>(v: &'a Json, at: &str) -> Result<&'a str, ConfigError> {
    v.as_str()
        .ok_or_else(|| ConfigError(format!("{at} must be a string, not {v}")))
}

/// Largest partition count accepted (the service's maximum on dedicated tiers).
pub const MAX_PARTITIONS: u32 = 2048;

/// How the user wrote the entities, so that an error names a field as they spelled it: a JSON
/// file (each hub at its namespace and entity index) or an [`EntityConfig`] built in code.
enum Written<'a> {
    Json(&'a [(usize, usize)]),
    Code,
}

impl Written<'_> {
    fn hubs(&self) -> String {
        match self {
            Written::Json(_) => "UserConfig.NamespaceConfig[].Entities".into(),
            Written::Code => "EntityConfig.hubs".into(),
        }
    }

    fn hub(&self, i: usize) -> String {
        match self {
            Written::Json(at) => {
                let (ns, e) = at.get(i).copied().unwrap_or_default();
                format!("UserConfig.NamespaceConfig[{ns}].Entities[{e}]")
            }
            Written::Code => format!("EntityConfig.hubs[{i}]"),
        }
    }

    fn name(&self, i: usize) -> String {
        match self {
            Written::Json(_) => format!("{}.Name", self.hub(i)),
            Written::Code => format!("{}.name", self.hub(i)),
        }
    }

    fn partition_count(&self, i: usize) -> String {
        match self {
            Written::Json(_) => format!("{}.PartitionCount", self.hub(i)),
            Written::Code => format!("{}.partition_count", self.hub(i)),
        }
    }

    fn group(&self, i: usize, g: usize) -> String {
        match self {
            Written::Json(_) => format!("{}.ConsumerGroups[{g}].Name", self.hub(i)),
            Written::Code => format!("{}.consumer_groups[{g}]", self.hub(i)),
        }
    }
}

fn partition_count_error(at: &str, shown: impl std::fmt::Display) -> ConfigError {
    ConfigError(format!(
        "{at} must be a whole number from 1 to {MAX_PARTITIONS}, not {shown}"
    ))
}

/// A name that is usable as one segment of a link address.
fn check_segment(at: &str, name: &str) -> Result<(), ConfigError> {
    if name.is_empty() || name.contains('/') {
        return Err(ConfigError(format!(
            "{at} {name:?} must be non-empty and contain no '/'"
        )));
    }
    Ok(())
}

/// The one check of what the emulator can serve, for the JSON loader and `Emulator::start`
/// alike: at least one hub; names usable in addresses; 1 to [`MAX_PARTITIONS`] partitions
/// (0 would leave sends nowhere to go); no hub name twice (names are case-insensitive).
fn check_hubs(hubs: &[HubConfig], written: &Written<'_>) -> Result<(), ConfigError> {
    if hubs.is_empty() {
        return Err(ConfigError(format!(
            "{} defines no event hub",
            written.hubs()
        )));
    }
    for (i, hub) in hubs.iter().enumerate() {
        check_segment(&written.name(i), &hub.name)?;
        if !(1..=MAX_PARTITIONS).contains(&hub.partition_count) {
            return Err(partition_count_error(
                &written.partition_count(i),
                hub.partition_count,
            ));
        }
        if hubs[..i]
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case(&hub.name))
        {
            return Err(ConfigError(format!(
                "{} {:?} is defined twice",
                written.name(i),
                hub.name
            )));
        }
        for (g, group) in hub.consumer_groups.iter().enumerate() {
            check_segment(&written.group(i, g), group)?;
        }
    }
    Ok(())
}

impl EntityConfig {
    /// Checks a config built in code the way [`EntityConfig::from_json`] checks a file, with
    /// the same errors; `Emulator::start` calls it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_hubs(&self.hubs, &Written::Code)
    }

    /// Reads a config file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
        Self::from_json(&text)
    }

    /// Parses config JSON; errors name the offending field.
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        let root: Json =
            serde_json::from_str(text).map_err(|e| ConfigError(format!("not valid JSON: {e}")))?;
        let root = object(&root, "the top level")?;
        let user = object(required(root, "UserConfig", "the file")?, "UserConfig")?;
        let namespaces = array(
            required(user, "NamespaceConfig", "UserConfig")?,
            "UserConfig.NamespaceConfig",
        )?;
        // Hubs as written (consumer groups too), checked once all are read.
        let mut hubs: Vec<HubConfig> = Vec::new();
        let mut places: Vec<(usize, usize)> = Vec::new();
        let mut namespace = String::from("emulatorns1");
        for (ni, ns) in namespaces.iter().enumerate() {
            let at_ns = format!("UserConfig.NamespaceConfig[{ni}]");
            let ns = object(ns, &at_ns)?;
            if let Some(t) = optional(ns, "Type") {
                let t = string(t, &format!("{at_ns}.Type"))?;
                if !t.eq_ignore_ascii_case("eventhub") {
                    return Err(ConfigError(format!(
                        "{at_ns}.Type is {t:?}; only \"EventHub\" is served"
                    )));
                }
            }
            if let Some(n) = optional(ns, "Name") {
                namespace = string(n, &format!("{at_ns}.Name"))?.to_owned();
            }
            let entities = array(
                required(ns, "Entities", &at_ns)?,
                &format!("{at_ns}.Entities"),
            )?;
            for (ei, e) in entities.iter().enumerate() {
                let at = format!("{at_ns}.Entities[{ei}]");
                let e = object(e, &at)?;
                let name = string(required(e, "Name", &at)?, &format!("{at}.Name"))?;
                let partition_count = required(e, "PartitionCount", &at)?;
                let count = match partition_count {
                    Json::Number(n) => n.as_u64(),
                    Json::String(s) => s.parse().ok(),
                    _ => None,
                }
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| {
                    partition_count_error(&format!("{at}.PartitionCount"), partition_count)
                })?;
                let mut groups = Vec::new();
                if let Some(list) = optional(e, "ConsumerGroups") {
                    let list = array(list, &format!("{at}.ConsumerGroups"))?;
                    for (gi, g) in list.iter().enumerate() {
                        let at_g = format!("{at}.ConsumerGroups[{gi}]");
                        let g = object(g, &at_g)?;
                        groups.push(
                            string(required(g, "Name", &at_g)?, &format!("{at_g}.Name"))?
                                .to_owned(),
                        );
                    }
                }
                hubs.push(HubConfig {
                    name: name.to_owned(),
                    partition_count: count,
                    consumer_groups: groups,
                });
                places.push((ni, ei));
            }
        }
        check_hubs(&hubs, &Written::Json(&places))?;
        for hub in &mut hubs {
            let mut groups = vec!["$default".to_owned()];
            for g in hub.consumer_groups.drain(..) {
                if !groups.iter().any(|x| x.eq_ignore_ascii_case(&g)) {
                    groups.push(g);
                }
            }
            hub.consumer_groups = groups;
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
