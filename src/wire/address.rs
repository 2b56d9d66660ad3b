//! Link addresses: the `$cbs` and `$management` nodes and the entity paths of hubs,
//! partitions and consumer groups.

/// The claims-based security node that takes tokens.
pub const CBS_NODE: &str = "$cbs";
/// The node that answers READ requests for hub and partition metadata.
pub const MANAGEMENT_NODE: &str = "$management";
/// Path segment before a partition id.
pub const PARTITIONS_SEGMENT: &str = "Partitions";
/// Path segment before a consumer group name.
pub const CONSUMER_GROUPS_SEGMENT: &str = "ConsumerGroups";

/// What a link address names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    /// `$cbs`.
    Cbs,
    /// `$management` (or `<hub>/$management`, as Go attaches).
    Management,
    /// `<hub>`: sending where the service picks the partition.
    Hub(String),
    /// `<hub>/Partitions/<id>`: sending to one partition.
    Partition {
        /// The hub name.
        hub: String,
        /// The partition id.
        partition: String,
    },
    /// `<hub>/ConsumerGroups/<group>/Partitions/<id>`: receiving.
    Consumer {
        /// The hub name.
        hub: String,
        /// The consumer group name.
        consumer_group: String,
        /// The partition id.
        partition: String,
    },
}

impl Node {
    /// Classifies a bare path or an absolute URL (`amqps://host[:port]/path`); the segment
    /// names match case-insensitively, as the service does. `None` for anything else.
    pub fn parse(address: &str) -> Option<Node> {
        let path = match address.split_once("://") {
            Some((_, rest)) => rest.split_once('/').map_or("", |(_, p)| p),
            None => address,
        };
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let is = |s: &str, segment: &str| s.eq_ignore_ascii_case(segment);
        Some(match parts.as_slice() {
            [n] if *n == CBS_NODE => Node::Cbs,
            [n] | [_, n] if *n == MANAGEMENT_NODE => Node::Management,
            [hub] if !hub.is_empty() => Node::Hub((*hub).to_owned()),
            [hub, p, id] if is(p, PARTITIONS_SEGMENT) => Node::Partition {
                hub: (*hub).to_owned(),
                partition: (*id).to_owned(),
            },
            [hub, c, cg, p, id] if is(c, CONSUMER_GROUPS_SEGMENT) && is(p, PARTITIONS_SEGMENT) => {
                Node::Consumer {
                    hub: (*hub).to_owned(),
                    consumer_group: (*cg).to_owned(),
                    partition: (*id).to_owned(),
                }
            }
            _ => return None,
        })
    }

    /// The address as a bare path (what [`Node::parse`] reads back).
    pub fn path(&self) -> String {
        match self {
            Node::Cbs => CBS_NODE.to_owned(),
            Node::Management => MANAGEMENT_NODE.to_owned(),
            Node::Hub(hub) => hub.clone(),
            Node::Partition { hub, partition } => partition_path(hub, partition),
            Node::Consumer {
                hub,
                consumer_group,
                partition,
            } => consumer_path(hub, consumer_group, partition),
        }
    }
}

/// `<hub>/Partitions/<partition>`: the address a producer sends one partition's events to.
pub fn partition_path(hub: &str, partition: &str) -> String {
    format!("{hub}/{PARTITIONS_SEGMENT}/{partition}")
}

/// `<hub>/ConsumerGroups/<group>/Partitions/<partition>`: the address a consumer reads.
pub fn consumer_path(hub: &str, consumer_group: &str, partition: &str) -> String {
    format!("{hub}/{CONSUMER_GROUPS_SEGMENT}/{consumer_group}/{PARTITIONS_SEGMENT}/{partition}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_as_paths_and_urls() {
        assert_eq!(Node::parse("$cbs"), Some(Node::Cbs));
        assert_eq!(Node::parse("$management"), Some(Node::Management));
        assert_eq!(Node::parse("eh1/$management"), Some(Node::Management));
        assert_eq!(Node::parse("eh1"), Some(Node::Hub("eh1".into())));
        assert_eq!(
            Node::parse("amqps://localhost:5672/eh1/Partitions/0"),
            Some(Node::Partition {
                hub: "eh1".into(),
                partition: "0".into()
            })
        );
        assert_eq!(
            Node::parse("amqps://h/eh1/ConsumerGroups/$Default/Partitions/3"),
            Some(Node::Consumer {
                hub: "eh1".into(),
                consumer_group: "$Default".into(),
                partition: "3".into()
            })
        );
        assert_eq!(
            Node::parse("eh1/consumergroups/cg/partitions/1"),
            Some(Node::Consumer {
                hub: "eh1".into(),
                consumer_group: "cg".into(),
                partition: "1".into()
            })
        );
        assert_eq!(Node::parse("eh1/x"), None);
        assert_eq!(Node::parse(""), None);
        assert_eq!(Node::parse("amqps://h:5671/"), None);
    }

    #[test]
    fn paths_read_back_as_the_same_node() {
        assert_eq!(partition_path("eh1", "2"), "eh1/Partitions/2");
        assert_eq!(
            consumer_path("eh1", "$default", "3"),
            "eh1/ConsumerGroups/$default/Partitions/3"
        );
        for node in [
            Node::Cbs,
            Node::Management,
            Node::Hub("eh1".into()),
            Node::Partition {
                hub: "eh1".into(),
                partition: "7".into(),
            },
            Node::Consumer {
                hub: "eh1".into(),
                consumer_group: "cg1".into(),
                partition: "0".into(),
            },
        ] {
            assert_eq!(Node::parse(&node.path()), Some(node));
        }
    }
}
