//! The `switchyard` command line: runs the broker (and its dashboard) or acts as a
//! client of a running broker. Wiring only: no broker logic lives here.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod cli;
mod dashboard;

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let args = cli::Args::parse();
    if args.command.is_none() {
        return dashboard::run(&args.broker);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(cli::run(args))
}
