//! What the examples share: reading a count from the environment strictly, and reporting a
//! failure as one readable line with the exit status a shell script can act on.

use std::process::ExitCode;

/// The most events an example will handle in one run; more is a typo, not a plan, and some
/// examples hold one task or one slot per event.
pub const MAX_COUNT: usize = 1_000_000;

/// Why an example failed: how it was asked (exit status 2) or what happened (exit status 1).
pub enum Failure {
    Usage(String),
    Failed(Box<dyn std::error::Error>),
}

impl<E: std::error::Error + 'static> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure::Failed(Box::new(e))
    }
}

/// The count in environment variable `var`, or `default` when it is unset; anything but a
/// whole number from 0 to [`MAX_COUNT`] is a usage error rather than a silent default.
pub fn count_from_env(var: &str, default: usize) -> Result<usize, Failure> {
    let Some(raw) = std::env::var_os(var) else {
        return Ok(default);
    };
    let text = raw.to_string_lossy();
    match text.trim().parse::<usize>() {
        Ok(n) if n <= MAX_COUNT => Ok(n),
        _ => Err(Failure::Usage(format!(
            "{var}={text:?}: expected a whole number from 0 to {MAX_COUNT}"
        ))),
    }
}

/// Prints a failure on one line of stderr (its `Display`, which carries the AMQP condition)
/// and turns it into the exit status.
pub fn report(r: Result<(), Failure>) -> ExitCode {
    let (message, status) = match r {
        Ok(()) => return ExitCode::SUCCESS,
        Err(Failure::Usage(m)) => (m, 2),
        Err(Failure::Failed(e)) => (e.to_string(), 1),
    };
    let line = message.split_whitespace().collect::<Vec<_>>().join(" ");
    eprintln!("error: {line}");
    ExitCode::from(status)
}
