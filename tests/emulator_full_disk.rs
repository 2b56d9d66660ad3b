//! The emulator on a real, small filesystem (tmpfs) that fills up: acknowledged events survive a
//! restart with their sequence numbers, refused ones never appear, and sends are accepted again
//! once space returns. Needs root and `mount`; skips without them, except under `CI=true`
//! (where .ci/run is root), where it must run.

mod emulator_support;
mod support;

use bytes::Bytes;
use emulator_support::*;
use eventhubs::amqp::types::messaging::DeliveryState;
use eventhubs::amqp::Sender;
use eventhubs::emulator::{Emulator, EmulatorOptions, Fsync};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

const P0_IN: &str = "eh1/Partitions/0";
const P0_OUT: &str = "eh1/ConsumerGroups/$default/Partitions/0";
const EVENT_BYTES: usize = 2000;

/// A mounted tmpfs, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = std::env::temp_dir().join(format!("ehub-full-disk-{}", std::process::id()));
        std::fs::create_dir_all(&dir).ok()?;
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        if mounted {
            return Some(Tmpfs(dir));
        }
        let _ = std::fs::remove_dir(&dir);
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but a tmpfs could not be mounted (is the test running as root?)"
        );
        eprintln!("skipped: cannot mount a tmpfs (needs root)");
        None
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: the emulator's connection tasks may still hold the partition files open.
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Writes a file until the filesystem is full.
fn fill(path: &Path) {
    let mut f = std::fs::File::create(path).expect("filler file");
    let chunk = vec![0xA5u8; 4096];
    while f.write_all(&chunk).is_ok() {}
}

fn body(tag: &str, i: usize) -> Bytes {
    let mut b = format!("{tag}-{i}-").into_bytes();
    b.resize(EVENT_BYTES, b'.');
    Bytes::from(b)
}

/// The settled outcome of sending one event.
async fn send(sender: &Sender, payload: Bytes) -> DeliveryState {
    tokio::time::timeout(PROMPT, async {
        sender
            .start_send_bytes(encode(&event(payload)), 0, false)
            .await
            .expect("send queued")
            .await
            .expect("send settled")
    })
    .await
    .expect("send settled in time")
    .expect("an outcome")
}

async fn start(dir: &Path) -> Emulator {
    support::emulator_with(
        EmulatorOptions::ephemeral()
            .with_data_dir(dir)
            .with_fsync(Fsync::Always)
            .with_require_auth(false),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_sends_and_loses_nothing_acknowledged() {
    let Some(fs) = Tmpfs::mount("2m") else {
        return;
    };
    let data = fs.0.join("data");
    let filler = fs.0.join("filler");
    let mut acked: Vec<Bytes> = Vec::new();
    {
        let em = start(&data).await;
        let (_c, session) = connect(&em).await;
        let sender = attach_sender(&session, P0_IN).await;
        for i in 0..20 {
            let b = body("before", i);
            assert!(matches!(
                send(&sender, b.clone()).await,
                DeliveryState::Accepted(_)
            ));
            acked.push(b);
        }

        fill(&filler);
        // Slack in the file's last page may take a few more; then the disk is full.
        let mut refusals = 0;
        for i in 0..200 {
            let b = body("during", i);
            match send(&sender, b.clone()).await {
                DeliveryState::Accepted(_) => acked.push(b),
                DeliveryState::Rejected(r) => {
                    let e = r.error.expect("a refusal says why");
                    assert_eq!(e.condition.as_str(), "amqp:internal-error");
                    let text = e.description.map(|d| d.as_str().to_owned());
                    let text = text.unwrap_or_default();
                    assert!(text.contains("nothing stored"), "{text}");
                    refusals += 1;
                    if refusals == 3 {
                        break;
                    }
                }
                other => panic!("outcome {other:?}"),
            }
        }
        assert_eq!(refusals, 3, "a full disk refuses sends");
        let info = em.partition_info("eh1", 0).unwrap();
        assert_eq!(info.last_sequence_number, acked.len() as i64 - 1);

        std::fs::remove_file(&filler).unwrap();
        for i in 0..20 {
            let b = body("after", i);
            assert!(matches!(
                send(&sender, b.clone()).await,
                DeliveryState::Accepted(_)
            ));
            acked.push(b);
        }
    }

    // Restart on the same files: every acknowledged event, in order, with its sequence number.
    let em = start(&data).await;
    let (_c, session) = connect(&em).await;
    let mut rx = open_consumer(&session, P0_OUT, Some(EARLIEST)).await;
    let got = recv_n(&mut rx, acked.len()).await;
    for (i, (m, want)) in got.iter().zip(&acked).enumerate() {
        assert_eq!(seq(m), i as i64);
        assert_eq!(m.body.single_data(), Some(want), "event {i}");
    }
    assert!(
        recv_within(&mut rx, std::time::Duration::from_millis(300))
            .await
            .is_none(),
        "no refused event reappears"
    );
    let sender = attach_sender(&session, P0_IN).await;
    assert!(matches!(
        send(&sender, body("restarted", 0)).await,
        DeliveryState::Accepted(_)
    ));
    drop(em);
}
