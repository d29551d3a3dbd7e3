//! The command line: its grammar ([`Args`], [`Cmd`]) and the dispatch of each
//! subcommand to its home: `server` for the broker's flags and `serve`,
//! `topics` and `queues` for the client verbs of each kind, `manage` for the
//! operator verbs. `connect` holds the flags every client verb shares.

/// `println!` that ends the command quietly on a closed pipe ([`output::say_line`]).
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::cli::output::say_line(format_args!($($arg)*))
    };
}

mod connect;
mod describe;
mod manage;
mod output;
mod queues;
mod server;
mod shell;
mod topics;
mod values;

use clap::Subcommand;
use switchyard_broker::store::FsyncPolicy;
use switchyard_broker::Config;

pub use connect::ConnArgs;
pub use server::{
    broker_config, merged, parse_listen, typed_on_root, wait_for_signal, warn_if_open, BrokerArgs,
};

#[derive(clap::Parser, Debug)]
#[command(
    name = "switchyard",
    version,
    about = "A message broker with its operator's console built in",
    long_about = "A message broker with its operator's console built in.\n\n\
        With no subcommand, runs the broker and its dashboard in this terminal \
        (the flags below); `switchyard serve` runs it without the dashboard.\n\
        The client verbs reach a broker at -s/--server URL, or $SWITCHYARD_URL."
)]
pub struct Args {
    #[command(flatten)]
    pub broker: BrokerArgs,
    #[command(subcommand)]
    pub command: Option<Cmd>,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Run the broker without the dashboard; prints the URL it listens on.
    Serve(BrokerArgs),
    /// Publish a message to a topic (`--count N` for N of them).
    Pub(topics::PubArgs),
    /// Subscribe to a topic pattern; prints one JSON line per message.
    Sub(topics::SubArgs),
    /// Send a message to a queue.
    Send(queues::SendArgs),
    /// Consume a queue: prints one JSON line per job, then acks it.
    Consume(queues::ConsumeArgs),
    /// Send a request to a queue and print the reply.
    Request(queues::RequestArgs),
    /// Answer a queue's requests: with a command's output, their own data, or fixed data.
    Reply(queues::ReplyArgs),
    /// Create or update a queue's options, or make a topic retained.
    Declare(manage::DeclareArgs),
    /// Remove a queue's ready messages.
    Purge(manage::PurgeArgs),
    /// Move ready messages from one queue to another (dead letters back to work).
    Move(manage::MoveArgs),
    /// Remove one ready message from a queue by its id.
    Drop(manage::DropArgs),
    /// Put an in-flight job (or every job of one consumer) back in its queue now.
    Requeue(manage::RequeueArgs),
    /// Show a queue's next ready messages (not consumed), or a retained topic's last ones.
    Peek(manage::PeekArgs),
    /// Print a queue's (or with --topic a topic's) page as JSON: settings,
    /// consumers or subscribers, and the last 15 minutes, one sample a second.
    Describe(describe::DescribeArgs),
    /// Seal a topic: subscribers get what came before, then the end.
    Seal(topics::SealArgs),
    /// Delete a queue (or with --topic a topic) and what it holds.
    Delete(manage::DeleteArgs),
    /// Disconnect a client by its id.
    Kick(manage::KickArgs),
    /// The dashboard for a running broker, over the wire: every view and action of
    /// the embedded console (README, "The dashboard"). Needs an admin token with auth on.
    Top {
        #[command(flatten)]
        conn: ConnArgs,
        /// Only look: publish, purge, kick and requeue are hidden and refused.
        #[arg(long)]
        read_only: bool,
    },
    /// Print the broker's snapshot as JSON.
    Stats(manage::StatsArgs),
    /// Measure throughput and latency (see docs/BENCHMARKS.md).
    Bench {
        #[command(flatten)]
        bench: switchyard_bench::BenchArgs,
        /// The `--fsync` of the broker the bench starts (without --url).
        #[arg(long, default_value = "batch")]
        fsync: FsyncPolicy,
    },
    /// Make a fresh random token and print it with the `[[users]]` entry (its
    /// SHA-256) for the config file. The broker keeps only the digest.
    Token(manage::TokenArgs),
    /// Print a shell completion script: `switchyard completions bash > /etc/bash_completion.d/switchyard`.
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
}

impl Cmd {
    /// Whether this runs a broker (and so reads the config file and its flags).
    pub fn is_broker(command: &Option<Cmd>) -> bool {
        matches!(command, None | Some(Cmd::Serve(_)))
    }
}

/// Runs a subcommand; `config` is the broker's settings, for `serve`.
pub async fn run(command: Option<Cmd>, config: Config) -> anyhow::Result<()> {
    if !Cmd::is_broker(&command) {
        output::log_client_warnings();
    }
    let Some(command) = command else {
        // Plain `switchyard` (the dashboard) is run by main, outside the runtime.
        return Ok(());
    };
    match command {
        Cmd::Serve(_) => server::serve(config).await,
        // `top` is run by main, outside the runtime, as the dashboard is.
        Cmd::Top { .. } => Ok(()),
        Cmd::Pub(args) => topics::publish(args).await,
        Cmd::Sub(args) => topics::subscribe(args).await,
        Cmd::Seal(args) => topics::seal(args).await,
        Cmd::Send(args) => queues::send(args).await,
        Cmd::Consume(args) => queues::consume(args).await,
        Cmd::Request(args) => queues::request(args).await,
        Cmd::Reply(args) => queues::reply(args).await,
        Cmd::Declare(args) => manage::declare(args).await,
        Cmd::Purge(args) => manage::purge(args).await,
        Cmd::Move(args) => manage::move_messages(args).await,
        Cmd::Drop(args) => manage::drop_message(args).await,
        Cmd::Requeue(args) => manage::requeue(args).await,
        Cmd::Peek(args) => manage::peek(args).await,
        Cmd::Describe(args) => describe::describe(args).await,
        Cmd::Delete(args) => manage::delete(args).await,
        Cmd::Kick(args) => manage::kick(args).await,
        Cmd::Stats(args) => manage::stats(args).await,
        Cmd::Token(args) => manage::token(args),
        Cmd::Completions { shell } => {
            completions(shell);
            Ok(())
        }
        Cmd::Bench { bench, fsync } => Ok(switchyard_bench::run(bench, &fsync.to_string()).await?),
    }
}

/// Writes `shell`'s completion script for every subcommand and flag to stdout.
fn completions(shell: clap_complete::Shell) {
    use clap::CommandFactory as _;
    let mut command = Args::command();
    clap_complete::generate(shell, &mut command, "switchyard", &mut std::io::stdout());
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    /// Every argument of every subcommand says what it is in `--help`.
    #[test]
    fn every_argument_has_a_description() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if arg.get_help().is_none() && !arg.is_hide_set() && id != "help" && id != "version"
                {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in command.get_subcommands() {
                if sub.get_about().is_none() && sub.get_name() != "help" {
                    missing.push(format!("{path} {}", sub.get_name()));
                }
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Args::command(), "switchyard", &mut missing);
        assert_eq!(missing, Vec::<String>::new());
    }

    /// Client verbs show no broker flag, and the broker flags stay where a
    /// broker runs.
    #[test]
    fn broker_flags_belong_to_serve_and_the_root_only() {
        let root = Args::command();
        let long = |c: &clap::Command| -> Vec<String> {
            c.get_arguments()
                .filter_map(|a| a.get_long().map(str::to_string))
                .collect()
        };
        assert!(long(&root).contains(&"fsync".to_string()));
        let serve = root.find_subcommand("serve").unwrap();
        assert!(long(serve).contains(&"listen".to_string()));
        for verb in [
            "pub", "sub", "send", "consume", "request", "reply", "stats", "top", "kick",
        ] {
            let flags = long(root.find_subcommand(verb).unwrap());
            assert!(!flags.contains(&"listen".to_string()), "{verb}: {flags:?}");
            assert!(flags.contains(&"server".to_string()), "{verb}: {flags:?}");
            assert!(flags.contains(&"token".to_string()), "{verb}: {flags:?}");
        }
    }

    #[test]
    fn the_grammar_is_consistent() {
        Args::command().debug_assert();
    }
}
