//! Where each side of a scenario connects: publishers and senders to `--url`,
//! subscribers and consumers round-robin over `--sub-url` (default: `--url`
//! too), so that one run can load two nodes of a cluster, the publisher on
//! one and the subscribers on the other.

use crate::error::BenchError;
use crate::Target;

/// The URLs of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoints {
    /// Publishers, senders and every setup frame (`declare`) connect here.
    pub(crate) publish: String,
    /// Subscriber or consumer i connects to `subscribe[i % len]`; never empty.
    subscribe: Vec<String>,
}

impl Endpoints {
    /// All to one broker.
    pub(crate) fn single(url: String) -> Endpoints {
        Endpoints {
            subscribe: vec![url.clone()],
            publish: url,
        }
    }

    /// From `--url` and `--sub-url`: without `--sub-url`, all to `url`.
    /// `--sub-url` needs `--url` (a broker started here is one node) and the
    /// Switchyard target (the NATS scenarios have no warm-up of their own).
    pub(crate) fn from_flags(
        url: Option<String>,
        sub_urls: &[String],
        target: Target,
    ) -> Result<Option<Endpoints>, BenchError> {
        let sub_urls: Vec<String> = sub_urls
            .iter()
            .map(|u| u.trim().to_string())
            .filter(|u| !u.is_empty())
            .collect();
        match (url, sub_urls.is_empty()) {
            (None, true) => Ok(None),
            (None, false) => Err(BenchError::SubUrl(
                "--sub-url needs --url (the publishers' node)",
            )),
            (Some(_), false) if target == Target::Nats => Err(BenchError::SubUrl(
                "--sub-url is for --target switchyard (nodes of a Switchyard cluster)",
            )),
            (Some(url), true) => Ok(Some(Endpoints::single(url))),
            (Some(url), false) => Ok(Some(Endpoints {
                publish: url,
                subscribe: sub_urls,
            })),
        }
    }

    /// The URL of subscriber or consumer `i`.
    pub(crate) fn subscriber(&self, i: usize) -> &str {
        &self.subscribe[i % self.subscribe.len()]
    }

    /// Whether some subscriber connects elsewhere than the publisher: then a
    /// message crosses between brokers, and a subscription is only known to
    /// the publisher's broker some time after its `ok`.
    pub(crate) fn spread(&self) -> bool {
        self.subscribe.iter().any(|u| *u != self.publish)
    }

    /// `subscribers at ws://b` for the run's header; empty when not spread.
    pub(crate) fn describe(&self) -> String {
        if self.spread() {
            format!(
                "; subscribers and consumers at {} (round-robin)",
                self.subscribe.join(", ")
            )
        } else {
            String::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::BenchArgs;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }

    fn parse(flags: &[&str]) -> Result<Option<Endpoints>, BenchError> {
        let cli =
            Cli::try_parse_from(std::iter::once("bench").chain(flags.iter().copied())).unwrap();
        Endpoints::from_flags(cli.bench.url, &cli.bench.sub_url, cli.bench.target)
    }

    #[test]
    fn one_url_serves_both_sides_as_before() {
        let e = parse(&["--url", "ws://a/ws"]).unwrap().unwrap();
        assert_eq!(e, Endpoints::single("ws://a/ws".into()));
        assert_eq!(
            (e.subscriber(0), e.subscriber(5)),
            ("ws://a/ws", "ws://a/ws")
        );
        assert!(!e.spread());
        assert_eq!(e.describe(), "");
        assert!(
            parse(&[]).unwrap().is_none(),
            "no --url: a broker started here"
        );
    }

    #[test]
    fn sub_urls_take_subscribers_round_robin() {
        let e = parse(&["--url", "ws://a/ws", "--sub-url", "ws://b/ws"])
            .unwrap()
            .unwrap();
        assert_eq!(e.publish, "ws://a/ws");
        assert_eq!(
            (e.subscriber(0), e.subscriber(3)),
            ("ws://b/ws", "ws://b/ws")
        );
        assert!(e.spread());

        let e = parse(&["--url", "ws://a/ws", "--sub-url", "ws://a/ws,ws://b/ws"])
            .unwrap()
            .unwrap();
        let firsts: Vec<&str> = (0..4).map(|i| e.subscriber(i)).collect();
        assert_eq!(firsts, ["ws://a/ws", "ws://b/ws", "ws://a/ws", "ws://b/ws"]);
        assert!(e.spread());
        assert_eq!(
            e.describe(),
            "; subscribers and consumers at ws://a/ws, ws://b/ws (round-robin)"
        );

        // Repeated flags add up, as a comma list does; the same URL is no spread.
        let e = parse(&[
            "--url",
            "ws://a",
            "--sub-url",
            "ws://a",
            "--sub-url",
            "ws://a",
        ])
        .unwrap()
        .unwrap();
        assert!(!e.spread());
    }

    #[test]
    fn sub_url_without_url_or_against_nats_is_refused() {
        let err = parse(&["--sub-url", "ws://b/ws"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--sub-url needs --url (the publishers' node)"
        );
        let err =
            parse(&["--target", "nats", "--url", "ws://a", "--sub-url", "ws://b"]).unwrap_err();
        assert!(err.to_string().contains("--target switchyard"), "{err}");
    }
}
