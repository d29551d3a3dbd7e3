//! The dashboard on a made-up broker whose traffic moves with the clock, to try
//! the keys and look at the screens without running a broker:
//!
//! ```text
//! cargo run -p switchyard-ui --example demo            # a small, busy broker
//! cargo run -p switchyard-ui --example demo crowded    # 1,000 of everything
//! ```

use std::collections::HashSet;
use std::io;
use std::time::Instant;

use switchyard_broker::{BrokerError, Command, Snapshot, TailMessage};
use switchyard_ui::{fixture, FixtureSource, Reply, Source};

/// A fixture broker a step further along every second, that remembers what the
/// operator did to it (kicked clients stay gone, purged queues stay empty).
struct Demo {
    inner: FixtureSource,
    started: Instant,
    crowded: bool,
    kicked: HashSet<String>,
    purged: HashSet<String>,
    tail_seq: u64,
}

impl Source for Demo {
    fn snapshot(&mut self) -> Snapshot {
        let step = self.started.elapsed().as_secs();
        let mut snap = if self.crowded {
            fixture::crowded(step)
        } else {
            fixture::typical(step)
        };
        snap.clients.retain(|c| !self.kicked.contains(&c.id));
        snap.server.connections = snap.clients.len() as u64;
        for q in snap
            .queues
            .iter_mut()
            .filter(|q| self.purged.contains(&q.name))
        {
            q.ready = 0;
            q.oldest_ready_ms = None;
        }
        self.inner.snapshot = snap.clone();
        if let Some(pattern) = self.inner.open_tail_pattern() {
            self.tail_seq += 1;
            let mut message = fixture::tail_orders()[(self.tail_seq % 5) as usize].clone();
            message.topic = pattern.to_string();
            message.seq = self.tail_seq;
            message.time = fixture::BASE_TIME_MS + self.started.elapsed().as_millis() as u64;
            self.inner.push_tail([message]);
        }
        snap
    }

    fn execute(&mut self, cmd: Command, reply: Reply) {
        match &cmd {
            Command::Kick { client, .. } => {
                self.kicked.insert(client.clone());
            }
            Command::Purge { queue } => {
                self.purged.insert(queue.clone());
            }
            _ => {}
        }
        self.inner.execute(cmd, reply);
    }

    fn open_tail(
        &mut self,
        pattern: &str,
        query: &switchyard_broker::MessageQuery,
    ) -> Result<(), BrokerError> {
        self.inner.open_tail(pattern, query)
    }

    fn poll_tail(&mut self, max: usize) -> Vec<TailMessage> {
        self.inner.poll_tail(max)
    }

    fn close_tail(&mut self) {
        self.inner.close_tail();
    }
}

fn main() -> io::Result<()> {
    let crowded = std::env::args().nth(1).as_deref() == Some("crowded");
    let mut inner = FixtureSource::typical(0);
    inner.peeks.insert("jobs".into(), fixture::peeked_jobs());
    let demo = Demo {
        inner,
        started: Instant::now(),
        crowded,
        kicked: HashSet::new(),
        purged: HashSet::new(),
        tail_seq: 0,
    };
    switchyard_ui::run(demo, "ws://127.0.0.1:7400/ws (demo)")
}
