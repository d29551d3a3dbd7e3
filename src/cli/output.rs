//! What the client verbs print: one JSON line per delivery on stdout (quietly
//! ending on a closed pipe), and on stderr what the client could not decode.

use std::io::{IsTerminal as _, Write as _};

use serde_json::{json, Value};
use switchyard_broker::Headers;
use switchyard_client::Undecoded;

/// One output line of `sub` or `consume`: `fields` (an object) with the
/// delivery's `data` and `headers`, each as the broker sent it when this client
/// could not decode it. The line is then exactly as valid JSON as what the broker
/// accepted, and the message is shown rather than dropped or shown as `null`.
pub fn delivery_line(
    mut fields: Value,
    data: Value,
    headers: Option<Headers>,
    undecoded: Option<&Undecoded>,
) -> String {
    let raw_data = undecoded.and_then(|u| u.data.as_deref());
    let raw_headers = undecoded.and_then(|u| u.headers.as_deref());
    if raw_data.is_none() {
        fields["data"] = data;
    }
    if let (None, Some(h)) = (raw_headers, headers) {
        fields["headers"] = json!(h);
    }
    let mut line = fields.to_string();
    for (name, raw) in [("data", raw_data), ("headers", raw_headers)] {
        if let Some(raw) = raw {
            // `fields` is a non-empty object: its closing brace is the last byte.
            line.pop();
            line.push_str(&format!(",\"{name}\":{raw}}}"));
        }
    }
    line
}

/// Says on stderr that `what` is shown as received, because this client could not
/// decode part of it.
pub fn warn_undecoded(what: &str, undecoded: &Undecoded) {
    eprintln!(
        "switchyard: {what} is shown as the broker sent it; this client cannot decode it: {}",
        undecoded.problems.join("; ")
    );
}

/// Shows the client library's warnings on stderr (frames it could not deliver,
/// errors no call waits for): a client subcommand must never drop one silently.
pub fn log_client_warnings() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

/// Writes one line to stdout. A closed pipe (`switchyard stats | head`) ends the
/// command quietly, as it does a Unix tool, instead of a panic.
pub fn say_line(line: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let written = out
        .write_fmt(line)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
    match written {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => {
            eprintln!("switchyard: cannot write to stdout: {e}");
            std::process::exit(1);
        }
    }
}
