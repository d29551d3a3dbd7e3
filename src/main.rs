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
    // Only a broker reads the config file: a client subcommand must not fail on a
    // broken file it has no use for.
    let config = match args.command {
        None | Some(cli::Cmd::Serve) => cli::broker_config(&args.broker, &matches)?,
        Some(_) => switchyard_broker::Config::default(),
    };
    // The bench opens as many connections as the broker takes.
    if matches!(
        args.command,
        None | Some(cli::Cmd::Serve) | Some(cli::Cmd::Bench(_))
    ) {
        raise_open_files_limit();
    }
    if args.command.is_none() {
        return dashboard::run(config);
    }
    if let Some(cli::Cmd::Top {
        url,
        token,
        read_only,
        ca,
    }) = &args.command
    {
        return remote::run(url, token.clone(), ca.as_deref(), *read_only);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(cli::run(args, config))
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
