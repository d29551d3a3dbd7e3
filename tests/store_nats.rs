//! The storage seam's shared suite (`store::conformance`) on the NATS JetStream
//! backend, against a real three-server JetStream cluster on loopback
//! (tests/common/nats.rs).
//!
//! One cluster serves every check, one after another, each in a namespace of
//! its own (its streams and subjects apart from the others'), so the checks see
//! fresh storage without a cluster each. A "power cut" here kills all three
//! servers with SIGKILL and starts them again: every acked message must come
//! back. (nats-server 2.9 fsyncs its files on a timer, not per message, so this
//! is a crash of every server, not of every machine: see docs/OPERATIONS.md.)

mod common;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use common::nats::NatsCluster;
use switchyard_broker::store::conformance::{checks, Storage};
use switchyard_broker::store::{Backend, NatsBackend, NatsStoreConfig};

/// One check's storage: the shared cluster, under a namespace of its own.
struct OnNats<'a> {
    cluster: &'a Mutex<NatsCluster>,
    urls: Vec<String>,
    namespace: String,
}

impl Storage for OnNats<'_> {
    fn open(&self) -> Arc<dyn Backend> {
        let config = NatsStoreConfig {
            replicas: 3,
            namespace: self.namespace.clone(),
        };
        let backend = NatsBackend::connect(&self.urls, config).unwrap();
        assert_eq!(backend.replicas(), 3, "three servers: three replicas");
        Arc::new(backend)
    }

    fn cut_power(&self) -> bool {
        let mut cluster = self.cluster.lock().unwrap();
        cluster.kill_all();
        cluster.start_all();
        true
    }
}

#[test]
fn the_seam_suite_passes_on_a_three_server_jetstream_cluster() {
    let cluster = NatsCluster::start();
    let urls: Vec<String> = cluster.urls().split(',').map(String::from).collect();
    let cluster = Mutex::new(cluster);
    for (i, (name, check)) in checks().into_iter().enumerate() {
        let started = Instant::now();
        let storage = OnNats {
            cluster: &cluster,
            urls: urls.clone(),
            namespace: format!("C{i}"),
        };
        eprintln!("{name} ...");
        check(&storage);
        eprintln!("{name}: ok in {:?}", started.elapsed());
    }
}

/// One NATS server of three killed with SIGKILL under a stream of appends to a
/// retained topic: every append whose ticket resolved is read back once, with
/// the seq it was given, and nothing is read that was never appended. Appends
/// refused meanwhile (the stream's writer stops at its first failure, until the
/// topic is opened again, which may take the cluster's election) are retried
/// as a client would.
#[test]
fn a_killed_nats_server_loses_no_acked_message_of_a_retained_topic() {
    use std::collections::HashMap;
    use std::time::Duration;
    use switchyard_broker::store::{ReadFrom, Retention, Ticket, TopicStore};

    // The store's warnings (a read that failed) in the test's output.
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let mut cluster = NatsCluster::start();
    let urls: Vec<String> = cluster.urls().split(',').map(String::from).collect();
    let config = NatsStoreConfig {
        namespace: "K".into(),
        ..NatsStoreConfig::default()
    };
    // Connected to the server to be killed: the writer's connection moves to
    // another (which the first told it of) mid-stream.
    let backend = NatsBackend::connect(&[cluster.servers[0].url()], config.clone()).unwrap();
    let mut topic: Arc<dyn TopicStore> = backend.open_topic("crash", Retention::default()).unwrap();
    // seq by body, of every append whose ticket said stored.
    let mut acked: HashMap<String, u64> = HashMap::new();
    let (mut refused, mut failed_tickets) = (0u64, 0u64);
    let mut in_flight: Vec<(String, u64, Ticket)> = Vec::new();
    let mut settle = |in_flight: &mut Vec<(String, u64, Ticket)>,
                      acked: &mut HashMap<String, u64>| {
        for (body, seq, ticket) in in_flight.drain(..) {
            match ticket.wait_blocking() {
                Ok(()) => {
                    acked.insert(body, seq);
                }
                Err(_) => failed_tickets += 1,
            }
        }
    };
    let started = Instant::now();
    let total = 600u64;
    let mut i = 0u64;
    let mut killed = false;
    while i < total {
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "stuck at append {i}"
        );
        if i == 200 && !killed {
            cluster.kill(0);
            killed = true;
            eprintln!("killed n1 after {:?}", started.elapsed());
        }
        let body = format!("m{}", i + 1);
        match topic.append(i + 1, body.as_bytes()) {
            Ok(a) => {
                i += 1;
                // Waited for 20 at a time: a stream of appends in flight when the
                // server dies.
                in_flight.push((body, a.seq, a.durable));
                if in_flight.len() == 20 {
                    settle(&mut in_flight, &mut acked);
                }
            }
            Err(_) => {
                refused += 1;
                settle(&mut in_flight, &mut acked);
                std::thread::sleep(Duration::from_millis(200));
                if let Ok(t) = backend.open_topic("crash", Retention::default()) {
                    topic = t;
                }
            }
        }
    }
    settle(&mut in_flight, &mut acked);
    eprintln!(
        "appended {total} in {:?}: acked {}, refused {refused}, failed tickets {failed_tickets}",
        started.elapsed(),
        acked.len()
    );
    drop(topic);
    backend.close();
    drop(backend);
    // Read back on a new connection, once the stream answers again.
    let reader = NatsBackend::connect(&urls, config).unwrap();
    let topic = reader.open_topic("crash", Retention::default()).unwrap();
    let mut seen: HashMap<String, Vec<u64>> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        seen.clear();
        for m in topic.read(ReadFrom::First) {
            let m = m.unwrap();
            seen.entry(String::from_utf8(m.body.to_vec()).unwrap())
                .or_default()
                .push(m.seq);
        }
        if seen.len() >= acked.len() || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let lost = acked.keys().filter(|b| !seen.contains_key(*b)).count();
    let duplicated = seen.values().filter(|s| s.len() > 1).count();
    let unexpected = seen
        .keys()
        .filter(|b| {
            b.strip_prefix('m')
                .and_then(|n| n.parse::<u64>().ok())
                .is_none_or(|n| n == 0 || n > total)
        })
        .count();
    let moved = acked
        .iter()
        .filter(|(b, seq)| seen.get(*b).is_some_and(|s| s[0] != **seq))
        .count();
    eprintln!("read {} in {:?}", seen.len(), started.elapsed());
    assert_eq!(
        (lost, duplicated, unexpected, moved),
        (0, 0, 0, 0),
        "lost, duplicated, unexpected, acked under another seq"
    );
    assert!(
        acked.len() > 500,
        "appends went on after the kill: {}",
        acked.len()
    );
    // Replay from a seq still works on the two servers left.
    let from_10: Vec<u64> = topic
        .read(ReadFrom::Seq(10))
        .take(3)
        .map(|m| m.unwrap().seq)
        .collect();
    assert_eq!(from_10, vec![10, 11, 12]);
    reader.close();
}
