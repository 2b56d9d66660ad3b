//! Progress and summaries: both on stderr so stdout carries only data; the bar only on a
//! terminal, summaries unless `--quiet`.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::Duration;

/// A progress bar on stderr when it is a terminal, otherwise nothing.
pub struct Progress(Option<ProgressBar>);

impl Progress {
    /// A bar for `what` ("sent", "received"), of `total` events when known.
    pub fn new(what: &str, total: Option<u64>, quiet: bool) -> Progress {
        if quiet || !std::io::stderr().is_terminal() {
            return Progress(None);
        }
        let bar = match total {
            Some(t) => ProgressBar::with_draw_target(Some(t), ProgressDrawTarget::stderr()),
            None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
        };
        let template = if total.is_some() {
            format!("{what} {{pos}}/{{len}} events {{wide_bar}} {{per_sec}} {{elapsed}}")
        } else {
            format!("{what} {{pos}} events {{spinner}} {{per_sec}} {{elapsed}}")
        };
        if let Ok(style) = ProgressStyle::with_template(&template) {
            bar.set_style(style);
        }
        bar.enable_steady_tick(Duration::from_millis(200));
        Progress(Some(bar))
    }

    /// Moves the bar to `done` events.
    pub fn set(&self, done: u64) {
        if let Some(b) = &self.0 {
            b.set_position(done);
        }
    }

    /// Removes the bar so that the summary or an error gets a line of its own.
    pub fn clear(&self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}

/// `1 event`, `2 events`.
pub fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// `N events in S s (R events/s)`, the rate over `secs` of work (no idle wait in it).
pub fn rate(n: u64, secs: f64) -> String {
    if n == 0 || secs <= 0.0 {
        return plural(n, "event");
    }
    format!(
        "{} in {secs:.2} s ({:.0} events/s)",
        plural(n, "event"),
        n as f64 / secs
    )
}
