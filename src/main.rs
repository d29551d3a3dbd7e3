//! The `switchyard` command line: runs the broker (and its dashboard) or acts as a
//! client of a running broker. Wiring only: no broker logic lives here.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod cli;
mod config;
#[cfg(test)]
mod console_tests;
mod dashboard;
mod remote;
mod token;

use clap::{CommandFactory, FromArgMatches};

fn main() -> anyhow::Result<()> {
    // The matches are kept, not only the parsed flags: they tell a flag typed on
    // the command line (which beats the config file) from its default (which does not).
    let matches = cli::Args::command().get_matches();
    let args = cli::Args::from_arg_matches(&matches)?;
    let broker = broker_args(&args, &matches)?;
    // Only a broker reads the config file: a client subcommand must not fail on a
    // broken file it has no use for.
    let config = match &broker {
        Some(flags) => cli::broker_config(flags, &matches)?,
        None => switchyard_broker::Config::default(),
    };
    // The bench opens as many connections as the broker takes.
    if matches!(
        args.command,
        None | Some(cli::Cmd::Serve(_)) | Some(cli::Cmd::Bench { .. })
    ) {
        raise_open_files_limit();
    }
    if args.command.is_none() {
        return dashboard::run(config).map_err(without_terminal);
    }
    if let Some(cli::Cmd::Top { conn, read_only }) = &args.command {
        return remote::run(&conn.url(), conn.token(), conn.ca.as_deref(), *read_only);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(cli::run(args.command, config))
}

/// The broker flags this command runs with: plain `switchyard`'s, or `serve`'s
/// merged with any typed before it; `None` for a client verb, which refuses
/// broker flags typed before it rather than ignore them.
fn broker_args(
    args: &cli::Args,
    matches: &clap::ArgMatches,
) -> anyhow::Result<Option<cli::BrokerArgs>> {
    match (&args.command, matches.subcommand()) {
        (None, _) => Ok(Some(args.broker.clone())),
        (Some(cli::Cmd::Serve(serve)), Some((_, serve_m))) => {
            Ok(Some(cli::merged(&args.broker, matches, serve, serve_m)))
        }
        (Some(_), sub) => {
            let typed = cli::typed_on_root(matches);
            if let (Some(flag), Some((name, _))) = (typed.first(), sub) {
                anyhow::bail!(
                    "{flag} is a flag of the broker (`switchyard serve {flag} ...`); \
                     `switchyard {name}` is a client and does not take it"
                );
            }
            Ok(None)
        }
    }
}

/// Plain `switchyard` in a service, a pipe or CI: the dashboard cannot open a
/// terminal (`No such device or address`, from /dev/tty). Say so, and what to
/// run instead. The check follows the attempt rather than preceding it so that
/// what a broker checks first (a data directory another broker holds, a port in
/// use) is still reported as such.
fn without_terminal(e: anyhow::Error) -> anyhow::Error {
    use std::io::IsTerminal as _;
    let no_terminal = !(std::io::stdin().is_terminal() && std::io::stdout().is_terminal());
    let terminal_error = e
        .downcast_ref::<std::io::Error>()
        .and_then(std::io::Error::raw_os_error)
        .is_some_and(|code| {
            code == rustix::io::Errno::NXIO.raw_os_error()
                || code == rustix::io::Errno::NOTTY.raw_os_error()
        });
    if no_terminal && terminal_error {
        return anyhow::anyhow!(
            "plain `switchyard` shows its dashboard, which needs a terminal, and this \
             has none (a service, a pipe, CI): run `switchyard serve` for the broker \
             alone, and `switchyard top` from a terminal for its dashboard"
        );
    }
    e
}

/// Raises the soft limit on open files to the hard one. Every connection and
/// every open log takes a descriptor, and distributions start processes at a soft
/// 1,024 while allowing far more: a broker should not run out at a tenth of its
/// `max_connections` because nobody typed `ulimit -n`.
fn raise_open_files_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        let was = limit.current;
        limit.current = limit.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            eprintln!("warning: cannot raise the open files limit from {was:?}: {e}");
        }
    }
}
