//! The keyboard habits from k9s: the `:` line (verbs, completion, history,
//! errors), Esc back one level, `g`/`G`, Space to pause, and the actions on
//! every row a kept filter lists.

use super::*;

fn ctrl(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL)
}

impl Harness {
    /// Open the `:` line and type `line` into it, without Enter.
    fn colon(&mut self, line: &str) -> &mut Self {
        self.keys(":").keys(line)
    }

    /// Type `line` after `:` and press Enter.
    fn run(&mut self, line: &str) -> &mut Self {
        self.colon(line).key(KeyCode::Enter)
    }

    fn line(&self) -> Option<&str> {
        self.app.command_line().map(|l| l.value())
    }
}

// The command line.

#[test]
fn colon_q_selects_a_queue_on_the_queues_view() {
    let mut h = Harness::new();
    assert_eq!(h.app.context(), keys::Context::Table);
    h.colon("q thumbnails");
    assert_eq!(h.app.context(), keys::Context::Command);
    assert_eq!(h.line(), Some("q thumbnails"));
    h.key(KeyCode::Enter);
    assert_eq!(h.app.view(), View::Queues);
    assert_eq!(h.selected().as_deref(), Some("thumbnails"));
    assert_eq!(h.line(), None, "the line closes once it ran");
    // `:q` alone is the view; `:queue` the long form.
    h.run("i").run("queue jobs");
    assert_eq!(
        (h.app.view(), h.selected().as_deref()),
        (View::Queues, Some("jobs"))
    );
}

#[test]
fn colon_q_clears_a_filter_that_hides_the_queue() {
    let mut h = Harness::new();
    h.keys("3/emails").key(KeyCode::Enter);
    assert_eq!(h.table().rows.len(), 1);
    h.run("q reports");
    assert_eq!(h.selected().as_deref(), Some("reports"));
    assert_eq!(h.table().filter, "");
}

#[test]
fn an_unknown_command_or_name_says_so_and_stays_in_the_line() {
    let mut h = Harness::new();
    h.run("zap jobs");
    assert_eq!(
        h.status(),
        "Unknown command :zap (Tab completes; :help lists the keys)"
    );
    assert_eq!(h.line(), Some("zap jobs"), "still there, to fix");
    // Fixed in place: clear the line and type again.
    for _ in 0.."zap jobs".len() {
        h.key(KeyCode::Backspace);
    }
    assert_eq!(h.status(), "", "an edit clears the error");
    h.keys("q nope").key(KeyCode::Enter);
    assert_eq!(h.status(), "No queue named nope (Tab completes names)");
    assert_eq!(h.line(), Some("q nope"));
    assert_eq!(h.app.view(), View::Overview, "nothing ran");
    h.key(KeyCode::Esc);
    assert_eq!(h.line(), None);
    assert!(h.source.executed.is_empty());
}

#[test]
fn colon_t_shows_the_topics_a_pattern_matches_and_esc_shows_all_again() {
    let mut h = Harness::new();
    h.run("t metrics.*");
    assert_eq!(h.app.view(), View::Topics);
    let names = |h: &Harness| -> Vec<String> {
        let mut n: Vec<String> = (h.table().rows.iter())
            .map(|&i| h.app.snapshot.topics[i].name.clone())
            .collect();
        n.sort();
        n
    };
    assert_eq!(names(&h), ["metrics.cpu", "metrics.mem"]);
    assert_eq!(
        h.status(),
        "2 topics match metrics.* (Esc shows every topic)"
    );
    h.run("t >");
    assert_eq!(names(&h).len(), 6);
    h.run("t orders.eu");
    assert_eq!(names(&h), ["orders.eu"]);
    h.key(KeyCode::Esc);
    assert_eq!(names(&h).len(), 6, "Esc clears the pattern");
    h.run("t orders.>.eu");
    assert!(
        h.status().starts_with("Pattern orders.>.eu: "),
        "{}",
        h.status()
    );
    assert!(h.line().is_some());
}

#[test]
fn colon_c_selects_a_client_by_id_or_name() {
    let mut h = Harness::new();
    h.run("c worker-2");
    assert_eq!(
        (h.app.view(), h.selected().as_deref()),
        (View::Clients, Some("c3"))
    );
    h.run("c c5");
    assert_eq!(h.selected().as_deref(), Some("c5"));
    h.run("c nobody");
    assert_eq!(
        h.status(),
        "No client nobody, by id or name (Tab completes)"
    );
}

#[test]
fn two_clients_of_one_name_are_told_apart_by_id() {
    let mut source = FixtureSource::typical(10);
    source.snapshot.clients[2].name = Some("worker-1".into());
    let mut h = Harness::with(source);
    h.run("kick worker-1");
    assert_eq!(
        h.status(),
        "2 clients are named worker-1 (c2, c3): name one by id"
    );
    assert!(h.confirmation().is_none());
}

#[test]
fn colon_purge_asks_with_the_count_as_x_does() {
    let mut h = Harness::new();
    h.run("purge jobs");
    assert_eq!(
        h.confirmation().map(|c| c.question()).as_deref(),
        Some("Purge 5 ready messages from jobs? y/n")
    );
    assert_eq!(h.line(), None);
    h.keys("y");
    assert_eq!(
        h.source.executed,
        [Command::Purge {
            queue: "jobs".into()
        }]
    );
    assert_eq!(h.status(), "Purged 5 ready messages from jobs");
}

#[test]
fn colon_move_asks_then_moves_every_ready_message() {
    let mut h = Harness::new();
    h.run("move jobs reports");
    assert_eq!(
        h.confirmation().map(|c| c.question()).as_deref(),
        Some("Move 5 ready messages from jobs to reports? y/n")
    );
    h.keys("y");
    assert_eq!(
        h.source.executed,
        [Command::Move {
            from: "jobs".into(),
            to: "reports".into(),
            n: None,
            filter: None,
            msg: None
        }]
    );
    assert_eq!(h.status(), "Moved 5 messages from jobs to reports");
    h.run("move jobs nowhere");
    assert_eq!(h.status(), "No queue named nowhere (Tab completes names)");
    h.key(KeyCode::Esc).run("move emails.send jobs");
    assert_eq!(
        h.status(),
        "Nothing to move: emails.send has no ready messages"
    );
}

#[test]
fn colon_kick_names_the_client_in_the_question() {
    let mut h = Harness::new();
    h.run("kick worker-1");
    assert_eq!(
        h.confirmation().map(|c| c.question()).as_deref(),
        Some("Kick client c2 (worker-1, 10.0.0.7:40112)? y/n")
    );
    h.keys("n");
    assert!(h.source.executed.is_empty());
}

#[test]
fn a_read_only_console_refuses_the_verbs_that_change_the_broker() {
    let mut source = FixtureSource::typical(10);
    source.read_only = true;
    let mut h = Harness::with(source);
    h.tick();
    for line in ["purge jobs", "move jobs reports", "kick c2"] {
        h.run(line);
        assert_eq!(
            h.status(),
            "Read-only console (--read-only): it does not publish, purge, kick or requeue",
            "{line}"
        );
        assert!(h.confirmation().is_none());
    }
    h.run("q jobs");
    assert_eq!(h.selected().as_deref(), Some("jobs"), "looking is fine");
    assert!(h.source.executed.is_empty());
}

#[test]
fn colon_help_and_quit() {
    let mut h = Harness::new();
    h.run("help");
    assert!(matches!(h.app.overlay(), Some(Overlay::Help { .. })));
    h.key(KeyCode::Esc);
    h.source.remote = true;
    h.run("quit");
    assert!(h.app.should_quit());
}

#[test]
fn tab_completes_in_the_line() {
    let mut h = Harness::new();
    h.colon("pu").key(KeyCode::Tab);
    assert_eq!(h.line(), Some("purge "));
    h.keys("th").key(KeyCode::Tab);
    assert_eq!(h.line(), Some("purge thumbnails "));
    h.key(KeyCode::Esc).colon("t metrics.");
    assert_eq!(h.app.command_candidates(), ["metrics.cpu", "metrics.mem"]);
    // Typing after Tab goes on at the end.
    h.key(KeyCode::Tab).keys("c").key(KeyCode::Tab);
    assert_eq!(h.line(), Some("t metrics.cpu "));
}

#[test]
fn up_and_down_recall_earlier_commands() {
    let mut h = Harness::new();
    h.run("q jobs").run("i").run("zap");
    h.key(KeyCode::Esc);
    h.keys(":").key(KeyCode::Up);
    assert_eq!(h.line(), Some("zap"), "a failed line is kept too, to fix");
    h.key(KeyCode::Up).key(KeyCode::Up);
    assert_eq!(h.line(), Some("q jobs"));
    h.key(KeyCode::Down);
    assert_eq!(h.line(), Some("i"));
    h.key(KeyCode::Enter);
    assert_eq!(h.app.view(), View::InFlight);
}

#[test]
fn an_empty_line_just_closes() {
    let mut h = Harness::new();
    h.run("");
    assert_eq!(h.line(), None);
    assert_eq!(h.status(), "");
}

// Esc, one level back.

#[test]
fn esc_goes_back_one_level_at_a_time() {
    let mut h = Harness::new();
    h.keys("23");
    // A popup first: Esc closes it, back on its view.
    h.keys("?").key(KeyCode::Esc);
    assert!(h.app.overlay().is_none());
    assert_eq!(h.app.view(), View::Queues);
    // A filter being typed: cleared.
    h.keys("/jo").key(KeyCode::Esc);
    assert_eq!(
        (h.app.context(), h.table().filter.as_str()),
        (keys::Context::Table, "")
    );
    // A kept filter: cleared, the view stays.
    h.keys("/jo").key(KeyCode::Enter).key(KeyCode::Esc);
    assert_eq!(
        (h.app.view(), h.table().filter.as_str()),
        (View::Queues, "")
    );
    // The command line: closed, nothing else changes.
    h.keys(":q").key(KeyCode::Esc);
    assert_eq!(
        (h.app.context(), h.app.view()),
        (keys::Context::Table, View::Queues)
    );
    // A plain view: the one shown before it, then the one before that.
    h.key(KeyCode::Esc);
    assert_eq!(h.app.view(), View::Topics);
    h.key(KeyCode::Esc);
    assert_eq!(h.app.view(), View::Overview);
    h.key(KeyCode::Esc);
    assert_eq!(h.app.view(), View::Overview, "the overview is the end");
}

#[test]
fn esc_on_a_view_with_no_history_goes_to_the_overview() {
    let mut h = Harness::new();
    h.run("i");
    h.key(KeyCode::Esc);
    assert_eq!(h.app.view(), View::Overview);
    h.key(KeyCode::Esc);
    assert_eq!(h.app.view(), View::Overview);
}

// g and G.

#[test]
fn g_and_shift_g_go_to_the_first_and_last_row_and_popup_ends() {
    let mut h = Harness::new();
    h.keys("3G");
    assert_eq!(h.table().selected, h.table().rows.len() - 1);
    h.keys("g");
    assert_eq!(h.table().selected, 0);
    h.keys("?G");
    assert!(matches!(
        h.app.overlay(),
        Some(Overlay::Help { scroll: usize::MAX })
    ));
    h.keys("g");
    assert!(matches!(h.app.overlay(), Some(Overlay::Help { scroll: 0 })));
}

// Pause.

#[test]
fn space_freezes_the_tables_while_the_source_is_still_polled() {
    let mut h = Harness::new();
    h.keys("3");
    h.key(KeyCode::Char(' '));
    assert!(h.app.paused());
    h.source.snapshot.queues[0].ready = 999;
    h.source
        .snapshot
        .queues
        .push(switchyard_broker::stats::QueueStats {
            name: "new.queue".into(),
            ..Default::default()
        });
    h.tick().tick();
    assert_eq!(h.app.snapshot.queues[0].ready, 5, "still the frozen one");
    assert_eq!(h.table().rows.len(), 4);
    // Actions still work, on what is shown.
    h.keys("jx").tick();
    assert_eq!(
        h.confirmation().map(|c| c.question()).as_deref(),
        Some("Purge 999 ready messages from jobs? y/n"),
        "the question states what y removes now"
    );
    h.keys("y");
    assert_eq!(
        h.source.executed,
        [Command::Purge {
            queue: "jobs".into()
        }]
    );
    assert_eq!(
        h.app.snapshot.queues[0].ready, 5,
        "still frozen after the purge"
    );
    h.key(KeyCode::Char(' '));
    assert!(!h.app.paused());
    assert_eq!(h.app.snapshot.queues[0].ready, 0, "resumed with the newest");
    assert_eq!(h.table().rows.len(), 5);
    assert_eq!(h.status(), "Resumed");
}

#[test]
fn toasts_still_expire_while_paused() {
    let mut h = Harness::new();
    h.key(KeyCode::Char(' '));
    assert!(h.status().starts_with("Paused"));
    for _ in 0..20 {
        h.tick();
    }
    assert_eq!(h.status(), "");
}

// Every listed row.

#[test]
fn ctrl_x_purges_every_queue_the_filter_lists_after_one_question() {
    let mut h = Harness::new();
    h.keys("3").press(ctrl('x'));
    assert_eq!(
        h.status(),
        "Ctrl-X acts on every queue a / filter lists: filter first"
    );
    assert!(h.confirmation().is_none());
    h.keys("/e").key(KeyCode::Enter);
    let listed: Vec<String> = (h.table().rows.iter())
        .map(|&i| h.app.snapshot.queues[i].name.clone())
        .collect();
    let ready: u64 = (h.app.snapshot.queues.iter())
        .filter(|q| listed.contains(&q.name))
        .map(|q| q.ready)
        .sum();
    assert_eq!(listed.len(), 2, "{listed:?}");
    h.press(ctrl('x'));
    assert_eq!(
        h.confirmation().map(|c| c.question()),
        Some(format!(
            "Purge the 2 listed queues ({ready} ready messages)? y/n"
        ))
    );
    h.keys("y");
    let purged: Vec<Command> = (listed.iter())
        .map(|q| Command::Purge { queue: q.clone() })
        .collect();
    assert_eq!(h.source.executed, purged);
    assert_eq!(
        h.status(),
        format!("Purged 2 queues ({ready} ready messages)")
    );
}

#[test]
fn ctrl_r_requeues_every_job_the_filter_lists() {
    let mut h = Harness::new();
    h.keys("5/jobs").key(KeyCode::Enter).press(ctrl('r'));
    assert_eq!(
        h.confirmation().map(|c| c.question()).as_deref(),
        Some("Requeue the 2 listed jobs now (held by c2 (worker-1), c3 (worker-2))? y/n")
    );
    h.keys("y");
    let mut requeued: Vec<_> = (h.source.executed.iter())
        .map(|c| match c {
            Command::Requeue { queue, msg } => format!("{queue}/{msg}"),
            other => panic!("{other:?}"),
        })
        .collect();
    requeued.sort();
    assert_eq!(requeued, ["jobs/m000039", "jobs/m000041"]);
    assert_eq!(h.status(), "Requeued 2 jobs");
}

#[test]
fn ctrl_k_kicks_every_client_listed_and_counts_the_failures() {
    let mut h = Harness::new();
    h.keys("4/worker").key(KeyCode::Enter).press(ctrl('k'));
    assert_eq!(
        h.confirmation().map(|c| c.question()).as_deref(),
        Some("Kick the 2 listed clients (c2 (worker-1), c3 (worker-2))? y/n")
    );
    h.source.fail_next(ErrorCode::NotFound, "client c2 is gone");
    h.keys("y");
    assert_eq!(h.source.executed.len(), 2);
    assert_eq!(
        h.status(),
        "Kicked 1 of 2 clients, 1 failed: c2: not_found: client c2 is gone"
    );
}

#[test]
fn a_filter_that_lists_nothing_has_nothing_to_act_on() {
    let mut h = Harness::new();
    h.keys("4/nobody").key(KeyCode::Enter).press(ctrl('k'));
    assert_eq!(h.status(), "The filter lists no clients");
    assert!(h.confirmation().is_none());
}

#[test]
fn the_listed_actions_are_refused_read_only() {
    let mut source = FixtureSource::typical(10);
    source.read_only = true;
    let mut h = Harness::with(source);
    h.keys("4/worker").key(KeyCode::Enter).press(ctrl('k'));
    assert!(h.status().starts_with("Read-only console"));
    assert!(h.confirmation().is_none());
}

// Names beside ids.

#[test]
fn questions_name_clients_by_id_and_hello_name() {
    let h = Harness::new();
    let clients = &h.app.snapshot.clients;
    assert_eq!(overlay::named(&clients[2]), "c3 (worker-2)");
    assert_eq!(overlay::named(&clients[4]), "c5", "no name given");
}
