//! The commands `reply` and `consume --ack-after` run for each job: the job's
//! data on stdin, its exit status (and, for `reply`, its stdout) as the answer.

use std::io::Write as _;
use std::process::{Command, ExitStatus, Stdio};

use serde_json::Value;

/// A command given on the command line. One word is a shell line, run by
/// `sh -c` so that pipes and quotes work (`'tr a-z A-Z'`); several are a program
/// and its arguments, run as they are (`tr a-z A-Z`).
#[derive(Debug, Clone)]
pub struct JobCommand {
    argv: Vec<String>,
}

/// What a [`JobCommand`] did with one job.
pub struct Outcome {
    /// How it exited.
    pub status: ExitStatus,
    /// What it wrote on stdout, when asked to keep it.
    pub stdout: Vec<u8>,
}

impl JobCommand {
    /// The command `argv` stands for; `None` when it is empty.
    pub fn new(argv: Vec<String>) -> Option<JobCommand> {
        (!argv.is_empty()).then_some(JobCommand { argv })
    }

    /// Runs it with `data` on stdin ([`stdin_text`]); keeps its stdout when
    /// `capture`, else lets it write to ours. Its stderr is always ours. On a
    /// blocking thread: the connection's task must go on answering pings.
    pub async fn run(&self, data: &Value, capture: bool) -> anyhow::Result<Outcome> {
        let command = self.clone();
        let input = stdin_text(data);
        tokio::task::spawn_blocking(move || command.run_blocking(&input, capture)).await?
    }

    fn run_blocking(&self, input: &[u8], capture: bool) -> anyhow::Result<Outcome> {
        let mut command = match self.argv.as_slice() {
            [line] => {
                let mut c = Command::new("sh");
                c.arg("-c").arg(line);
                c
            }
            [program, args @ ..] => {
                let mut c = Command::new(program);
                c.args(args);
                c
            }
            [] => anyhow::bail!("no command to run"),
        };
        command.stdin(Stdio::piped()).stdout(if capture {
            Stdio::piped()
        } else {
            Stdio::inherit()
        });
        let mut child = command
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot run `{}`: {e}", self.argv.join(" ")))?;
        let stdin = child.stdin.take();
        // Written from a thread of its own: a command that answers before it has
        // read all its input must not deadlock against a full pipe.
        let output = std::thread::scope(|scope| {
            scope.spawn(move || {
                if let Some(mut stdin) = stdin {
                    // A command that does not read its input closes the pipe: fine.
                    let _ = stdin.write_all(input);
                }
            });
            child.wait_with_output()
        })?;
        Ok(Outcome {
            status: output.status,
            stdout: output.stdout,
        })
    }
}

/// A job's data as a command reads it: a JSON string as its text (so `tr a-z
/// A-Z` sees `ping`, not `"ping"`), anything else as compact JSON.
pub fn stdin_text(data: &Value) -> Vec<u8> {
    match data {
        Value::String(text) => text.clone().into_bytes(),
        other => other.to_string().into_bytes(),
    }
}

/// A command's stdout as reply data, read as `pub` reads its argument: JSON if
/// it parses, else text; one final newline dropped (`echo` adds it).
pub fn reply_data(stdout: &[u8]) -> Value {
    let text = String::from_utf8_lossy(stdout);
    let text = text.strip_suffix('\n').unwrap_or(&text);
    let text = text.strip_suffix('\r').unwrap_or(text);
    super::values::parse_data(text)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_string_goes_in_as_text_and_stdout_comes_back_as_json_or_text() {
        assert_eq!(stdin_text(&json!("ping")), b"ping");
        assert_eq!(stdin_text(&json!({"q": 1})), br#"{"q":1}"#);
        assert_eq!(reply_data(b"PING\n"), json!("PING"));
        assert_eq!(reply_data(b"{\"q\":1}\n"), json!({"q": 1}));
        assert_eq!(reply_data(b""), json!(""));
    }
}
