//! `ehub info`: the hub's and each partition's properties, as text or JSON.

use crate::progress::plural;
use crate::target::Target;
use crate::{timefmt, Failure};
use clap::Args;
use serde_json::json;

/// `ehub info` options.
#[derive(Args)]
pub struct InfoArgs {
    #[command(flatten)]
    target: Target,
    /// One JSON object on stdout instead of text.
    #[arg(short = 'J', long)]
    json: bool,
}

fn millis(t: std::time::SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Reads the hub and every partition, then prints them.
pub async fn run(a: InfoArgs) -> Result<(), Failure> {
    let client = a.target.client()?;
    let p = client.get_properties().await?;
    let mut parts = Vec::new();
    for id in &p.partition_ids {
        parts.push(client.get_partition_properties(id).await?);
    }
    if a.json {
        let partitions: Vec<_> = parts
            .iter()
            .map(|pp| {
                json!({
                    "id": pp.id,
                    "beginning_sequence_number": pp.beginning_sequence_number,
                    "last_enqueued_sequence_number": pp.last_enqueued_sequence_number,
                    "last_enqueued_offset": pp.last_enqueued_offset,
                    "last_enqueued_time": timefmt::rfc3339(millis(pp.last_enqueued_time_utc)),
                    "is_empty": pp.is_empty,
                })
            })
            .collect();
        println!(
            "{}",
            json!({
                "name": p.name,
                "created_at": timefmt::rfc3339(millis(p.created_at)),
                "partition_ids": p.partition_ids,
                "partitions": partitions,
            })
        );
    } else {
        println!(
            "event hub {} ({})",
            p.name,
            plural(p.partition_ids.len() as u64, "partition")
        );
        for pp in &parts {
            if pp.is_empty {
                println!("  partition {}: empty", pp.id);
            } else {
                let n = pp.last_enqueued_sequence_number - pp.beginning_sequence_number + 1;
                println!(
                    "  partition {}: sequence numbers {}..={} ({}), last offset {}, last enqueued {}",
                    pp.id,
                    pp.beginning_sequence_number,
                    pp.last_enqueued_sequence_number,
                    plural(n.max(0) as u64, "event"),
                    pp.last_enqueued_offset,
                    timefmt::rfc3339(millis(pp.last_enqueued_time_utc)),
                );
            }
        }
    }
    Ok(client.close().await?)
}
