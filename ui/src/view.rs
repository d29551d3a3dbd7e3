//! The dashboard's views: which one is shown is state, and the key table, the
//! tables and the drawing all name views by this type.

/// The five views, in tab order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum View {
    /// Rates, totals, the busiest topics and deepest queues, the event log.
    Overview,
    /// Every topic.
    Topics,
    /// Every queue.
    Queues,
    /// Every connected client.
    Clients,
    /// Every unacked job.
    InFlight,
}

impl View {
    /// All views in tab order.
    pub const ALL: [View; 5] = [
        View::Overview,
        View::Topics,
        View::Queues,
        View::Clients,
        View::InFlight,
    ];

    /// Position in tab order, from 0.
    pub fn index(self) -> usize {
        match self {
            View::Overview => 0,
            View::Topics => 1,
            View::Queues => 2,
            View::Clients => 3,
            View::InFlight => 4,
        }
    }

    /// The tab title.
    pub fn title(self) -> &'static str {
        match self {
            View::Overview => "Overview",
            View::Topics => "Topics",
            View::Queues => "Queues",
            View::Clients => "Clients",
            View::InFlight => "In-flight",
        }
    }

    /// The view `by` places further in tab order, wrapping around.
    pub(crate) fn shifted(self, by: usize) -> View {
        View::ALL[(self.index() + by) % View::ALL.len()]
    }
}
