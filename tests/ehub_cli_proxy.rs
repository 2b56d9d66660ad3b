//! `ehub … --proxy-from-env` end to end, as a process whose environment alone names the proxy
//! (this test process's own environment is never changed): with `HTTPS_PROXY`/`https_proxy`
//! naming a tinyproxy of the test's own, traffic goes through it (its log shows the CONNECT);
//! a wrong password there fails with the proxy's status line; `NO_PROXY`/`no_proxy` naming the
//! host goes direct; and without the flag the environment is not read at all.
#![cfg(feature = "cli")]

mod client_common;
mod support;

use client_common::Wire;
use std::process::{Command, Output, Stdio};
use support::tinyproxy::TinyProxy;

/// Every variable that could steer `ehub` elsewhere than the test says.
const STEERING: [&str; 7] = [
    "HTTPS_PROXY",
    "https_proxy",
    "NO_PROXY",
    "no_proxy",
    "EHUB_PROXY",
    "EVENTHUB_CONNECTION_STRING",
    "EVENTHUB_NAME",
];

/// Runs `ehub info` against `cs` over `wire` at 127.0.0.1:`port`, with `flag` (if any) and
/// exactly the variables in `env` among the steering ones.
fn ehub_info(cs: &str, wire: Wire, port: u16, flag: Option<&str>, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ehub"));
    cmd.args(["info", "--connection-string", cs, "--hub", "eh1"])
        .args(["--custom-endpoint", &format!("127.0.0.1:{port}")])
        .args(["--connect-timeout", "5", "--transport"])
        .arg(match wire {
            Wire::Amqp => "amqp",
            Wire::WebSockets => "websockets",
        })
        .args(flag)
        .stdin(Stdio::null());
    for var in STEERING {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    cmd.output().expect("run ehub")
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn https_proxy_and_no_proxy_from_the_environment(wire: Wire, upper: bool) {
    let Some(tp) = TinyProxy::start(&format!("env-{wire:?}"), "ehub-env", "env-pass") else {
        return;
    };
    let (proxy_var, no_proxy_var) = if upper {
        ("HTTPS_PROXY", "NO_PROXY")
    } else {
        ("https_proxy", "no_proxy")
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let emu = rt.block_on(wire.emulator());
    let cs = emu.connection_string();
    let port = wire.addr(&emu).port();
    let target = format!("127.0.0.1:{port}");
    let good = tp.url();
    let bad = tp.url_with_password("wrong-env-secret");

    // Through the proxy the environment names.
    let out = ehub_info(
        &cs,
        wire,
        port,
        Some("--proxy-from-env"),
        &[(proxy_var, &good)],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("eh1"),
        "{}",
        text(&out)
    );
    let tunnels = tp.connects_to(&target);
    assert!(tunnels >= 1, "no CONNECT {target} logged:\n{}", tp.log());

    // A wrong password there: the proxy's refusal, its status line, not the password.
    let out = ehub_info(
        &cs,
        wire,
        port,
        Some("--proxy-from-env"),
        &[(proxy_var, &bad)],
    );
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("refused CONNECT") && (t.contains(" 401 ") || t.contains(" 407 ")),
        "the proxy's status line is missing: {t}"
    );
    assert!(!t.contains("wrong-env-secret"), "the password leaked: {t}");

    // NO_PROXY naming the host: direct, though the proxy in the environment would refuse.
    let before = tp.connects_to(&target);
    let out = ehub_info(
        &cs,
        wire,
        port,
        Some("--proxy-from-env"),
        &[(proxy_var, &bad), (no_proxy_var, "example.com, 127.0.0.1")],
    );
    assert!(out.status.success(), "{}", text(&out));
    // Without the flag the environment is not read: direct too.
    let out = ehub_info(&cs, wire, port, None, &[(proxy_var, &bad)]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        tp.connects_to(&target),
        before,
        "a direct connection went through the proxy:\n{}",
        tp.log()
    );
    println!("{wire:?}: ehub --proxy-from-env with {proxy_var} through tinyproxy ({tunnels} tunnels), {no_proxy_var} direct");
}

#[test]
fn amqp_with_upper_case_variables() {
    https_proxy_and_no_proxy_from_the_environment(Wire::Amqp, true);
}

#[test]
fn websockets_with_lower_case_variables() {
    https_proxy_and_no_proxy_from_the_environment(Wire::WebSockets, false);
}
