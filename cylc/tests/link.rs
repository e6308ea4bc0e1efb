//! The link state machine, driven by hand: no sockets, no scheduler, no sleeping.

use std::time::{Duration, Instant};

use clonewire_cylc::link::{
    DataStore, Handshake, Link, LinkConfig, LinkEvent, LinkState, StoreOutcome, Transmit,
};
use clonewire_cylc::request::LinkRequest;
use clonewire_cylc::Kind;

/// A store that records what it was given. Payloads are text: a batch
/// `"bad:task_proxies"` reports that type mismatched, `"junk"` cannot be read.
#[derive(Default)]
struct Recorder {
    log: Vec<String>,
}

impl DataStore for Recorder {
    type Error = String;
    /// The payload, as text.
    type Changes = String;

    fn load_snapshot(&mut self, payload: &[u8]) -> Result<String, String> {
        let text = String::from_utf8_lossy(payload).into_owned();
        if text == "junk" {
            return Err("undecodable".into());
        }
        self.log.push(format!("snapshot {text}"));
        Ok(text)
    }

    fn apply_deltas(&mut self, payload: &[u8]) -> Result<StoreOutcome<String>, String> {
        let text = String::from_utf8_lossy(payload).into_owned();
        if text == "junk" {
            return Err("undecodable".into());
        }
        self.log.push(format!("deltas {text}"));
        let mismatched = text
            .strip_prefix("bad:")
            .and_then(Kind::from_cylc_name)
            .into_iter()
            .collect();
        Ok(StoreOutcome {
            changes: text,
            mismatched,
        })
    }

    fn replace_elements(&mut self, kind: Kind, payload: &[u8]) -> Result<StoreOutcome<String>, String> {
        let text = String::from_utf8_lossy(payload).into_owned();
        self.log.push(format!("replace {} {text}", kind.cylc_name()));
        Ok(StoreOutcome {
            changes: text,
            mismatched: Vec::new(),
        })
    }
}

fn config() -> LinkConfig {
    LinkConfig::new("tcp://sched:43001", "here")
}

fn sent(request: LinkRequest) -> Transmit {
    Transmit::Send(request.encode("here"))
}

fn events<S: DataStore>(link: &mut Link<S>) -> Vec<LinkEvent<S::Changes>> {
    std::iter::from_fn(|| link.poll_event()).collect()
}

/// A link that has loaded the snapshot "s0" and is live.
fn live(now: Instant) -> Link<Recorder> {
    let mut link = Link::new(config(), Recorder::default());
    assert_eq!(link.poll_transmit(now), Some(sent(LinkRequest::EntireWorkflow)));
    link.handle_reply(b"s0", now);
    assert_eq!(link.state(), &LinkState::Live);
    events(&mut link);
    link
}

#[test]
fn joining_queues_deltas_until_the_snapshot_then_applies_them_in_order() {
    let now = Instant::now();
    let mut link = Link::new(config(), Recorder::default());
    assert_eq!(link.state(), &LinkState::Joining);
    // The first request is the snapshot, and only one is in flight.
    assert_eq!(link.poll_transmit(now), Some(sent(LinkRequest::EntireWorkflow)));
    assert_eq!(link.poll_transmit(now), None);

    link.handle_published(b"all", b"d1", now);
    link.handle_published(b"all", b"d2", now);
    link.handle_published(b"other-topic", b"ignored", now);
    assert!(
        link.store().log.is_empty(),
        "nothing is applied before the snapshot"
    );

    link.handle_reply(b"s0", now);
    assert_eq!(link.store().log, ["snapshot s0", "deltas d1", "deltas d2"]);
    assert_eq!(link.state(), &LinkState::Live);
    assert_eq!(
        events(&mut link),
        [
            LinkEvent::Snapshot("s0".into()),
            LinkEvent::State(LinkState::Live),
            LinkEvent::Deltas("d1".into()),
            LinkEvent::Deltas("d2".into())
        ]
    );

    // Live: batches apply as they come, and nothing is asked until a long silence.
    link.handle_published(b"all", b"d3", now);
    assert_eq!(link.store().log.last().unwrap(), "deltas d3");
    assert_eq!(link.poll_transmit(now), None);
    assert_eq!(link.poll_timeout(), Some(now + Duration::from_secs(30)));
    assert_eq!(link.stats().batches, 3);
}

#[test]
fn a_checksum_mismatch_refetches_that_type_and_queues_deltas_meanwhile() {
    let now = Instant::now();
    let mut link = live(now);
    link.handle_published(b"all", b"bad:jobs", now);
    assert_eq!(
        events(&mut link),
        [
            LinkEvent::Deltas("bad:jobs".into()),
            LinkEvent::Mismatch(vec![Kind::Jobs])
        ]
    );
    assert_eq!(
        link.poll_transmit(now),
        Some(sent(LinkRequest::DataElements(Kind::Jobs)))
    );

    link.handle_published(b"all", b"d4", now);
    assert_eq!(link.store().log.last().unwrap(), "deltas bad:jobs", "d4 waits");

    link.handle_reply(b"j", now);
    // The workflow element has no checksum: it is fetched with any mismatch.
    assert_eq!(
        link.poll_transmit(now),
        Some(sent(LinkRequest::DataElements(Kind::Workflow)))
    );
    link.handle_reply(b"wf", now);
    assert_eq!(
        link.store().log[2..],
        [
            "replace jobs j".to_owned(),
            "replace workflow wf".to_owned(),
            "deltas d4".to_owned()
        ]
    );
    assert_eq!(
        events(&mut link),
        [
            LinkEvent::Refetched(Kind::Jobs, "j".into()),
            LinkEvent::Refetched(Kind::Workflow, "wf".into()),
            LinkEvent::Deltas("d4".into())
        ]
    );
    assert_eq!(link.stats().refetches, 2);
    assert_eq!(link.state(), &LinkState::Live);
}

#[test]
fn a_mismatch_also_refetches_the_types_that_list_its_ids() {
    let now = Instant::now();
    let mut link = live(now);
    link.handle_published(b"all", b"bad:edges", now);
    let mut asked = Vec::new();
    while let Some(Transmit::Send(frame)) = link.poll_transmit(now) {
        let frame: serde_json::Value = serde_json::from_slice(&frame).unwrap();
        asked.push(frame["args"]["element_type"].as_str().unwrap().to_owned());
        link.handle_reply(b"x", now);
    }
    // Edges are listed by task proxies, those by tasks and family proxies, and
    // family proxies by families; the workflow comes along.
    assert_eq!(
        asked,
        [
            "edges",
            "task_proxies",
            "tasks",
            "family_proxies",
            "families",
            "workflow"
        ]
    );
    assert_eq!(link.poll_transmit(now), None);
}

#[test]
fn a_type_that_keeps_differing_gets_a_whole_snapshot() {
    let now = Instant::now();
    let mut link = live(now);
    for round in 0..3 {
        link.handle_published(b"all", b"bad:jobs", now);
        assert_eq!(
            link.poll_transmit(now),
            Some(sent(LinkRequest::DataElements(Kind::Jobs))),
            "round {round}"
        );
        link.handle_reply(b"jobs", now);
        link.poll_transmit(now);
        link.handle_reply(b"wf", now);
    }
    link.handle_published(b"all", b"bad:jobs", now);
    assert_eq!(link.poll_transmit(now), Some(sent(LinkRequest::EntireWorkflow)));
}

#[test]
fn a_request_that_times_out_reopens_the_socket_and_is_sent_again() {
    let start = Instant::now();
    let mut link = Link::new(config(), Recorder::default());
    assert_eq!(link.poll_transmit(start), Some(sent(LinkRequest::EntireWorkflow)));
    let deadline = link.poll_timeout().expect("a request in flight has a deadline");
    assert_eq!(deadline, start + Duration::from_secs(5));

    link.handle_timeout(deadline - Duration::from_millis(1));
    assert_eq!(link.poll_transmit(deadline), None, "not yet");

    link.handle_timeout(deadline);
    assert_eq!(link.poll_transmit(deadline), Some(Transmit::ReopenRequestSocket));
    assert_eq!(
        link.poll_transmit(deadline),
        Some(sent(LinkRequest::EntireWorkflow))
    );
    // The second attempt waits twice as long.
    assert_eq!(link.poll_timeout(), Some(deadline + Duration::from_secs(10)));
    assert_eq!(link.stats().timeouts, 1);

    // The answer to the retry puts everything right.
    link.handle_reply(b"s0", deadline);
    assert_eq!(link.state(), &LinkState::Live);
    assert_eq!(link.store().log, ["snapshot s0"]);
}

#[test]
fn no_answer_at_all_is_a_clear_state_after_the_first_deadline() {
    let start = Instant::now();
    let mut link = Link::new(config(), Recorder::default());
    let mut now = start;
    let mut states = Vec::new();
    // A foreign key is never answered: the link keeps trying, with growing
    // deadlines, and never blocks on it.
    for _ in 0..6 {
        while link.poll_transmit(now).is_some() {}
        now = link.poll_timeout().expect("always a deadline while unanswered");
        link.handle_timeout(now);
        states.extend(events(&mut link));
    }
    let LinkEvent::State(LinkState::NoAnswer { message }) = &states[0] else {
        panic!("expected NoAnswer first, got {states:?}");
    };
    assert!(message.contains("tcp://sched:43001"), "{message}");
    assert!(message.contains("client's key admitted"), "{message}");
    // The state is set once, not once per retry, and the deadline stops growing.
    assert!(
        states.iter().skip(1).all(|e| !matches!(e, LinkEvent::State(_))),
        "{states:?}"
    );
    assert_eq!(now - start, Duration::from_secs(5 * (1 + 2 + 4 + 8 + 8 + 8)));
    assert_eq!(link.stats().timeouts, 6);
}

#[test]
fn a_scheduler_that_stops_answering_later_says_so_differently() {
    let now = Instant::now();
    let mut link = live(now);
    link.handle_published(b"all", b"bad:edges", now);
    link.poll_transmit(now);
    let deadline = link.poll_timeout().unwrap();
    link.handle_timeout(deadline);
    let LinkState::NoAnswer { message } = link.state() else {
        panic!("{:?}", link.state())
    };
    assert!(message.contains("stopped answering"), "{message}");
}

#[test]
fn shutdown_stops_the_link_for_good() {
    let now = Instant::now();
    let mut link = live(now);
    link.handle_published(b"all", b"bad:jobs", now);
    link.poll_transmit(now);
    link.handle_published(b"shutdown", b"REQUEST(CLEAN)", now);
    assert!(link.is_stopped());
    assert_eq!(
        link.state(),
        &LinkState::Stopped {
            reason: "REQUEST(CLEAN)".into()
        }
    );
    // Nothing more is asked or applied, and there is no deadline to wait for.
    link.handle_reply(b"jobs", now);
    link.handle_published(b"all", b"late", now);
    assert_eq!(link.poll_transmit(now), None);
    assert_eq!(link.poll_timeout(), None);
    assert!(!link
        .store()
        .log
        .iter()
        .any(|l| l.contains("late") || l.contains("replace")));
}

#[test]
fn an_error_reply_is_retried_after_a_backoff() {
    let now = Instant::now();
    let mut link = Link::new(config(), Recorder::default());
    link.poll_transmit(now);
    link.handle_reply(br#"{"error": {"message": "busy"}, "cylc_version": "8.5.4"}"#, now);
    let events = events(&mut link);
    assert!(
        matches!(&events[..], [LinkEvent::Problem(why)] if why.contains("busy")),
        "{events:?}"
    );
    assert_eq!(link.poll_transmit(now), None, "backing off");
    let retry = link.poll_timeout().unwrap();
    assert_eq!(retry, now + Duration::from_millis(200));
    link.handle_timeout(retry);
    assert_eq!(link.poll_transmit(retry), Some(sent(LinkRequest::EntireWorkflow)));
}

#[test]
fn an_unreadable_batch_rejoins() {
    let now = Instant::now();
    let mut link = live(now);
    link.handle_published(b"all", b"junk", now);
    assert!(matches!(&events(&mut link)[..], [LinkEvent::Problem(why)] if why.contains("rejoining")));
    assert_eq!(link.poll_transmit(now), Some(sent(LinkRequest::EntireWorkflow)));
    link.handle_reply(b"s1", now);
    assert_eq!(link.store().log, ["snapshot s0", "snapshot s1"]);
}

#[test]
fn a_full_queue_is_dropped_and_the_join_is_taken_again() {
    let now = Instant::now();
    let mut small = config();
    small.max_queued_bytes = 10;
    let mut link = Link::new(small, Recorder::default());
    link.poll_transmit(now);
    link.handle_published(b"all", b"123456", now);
    link.handle_published(b"all", b"789012", now);
    assert_eq!(link.stats().dropped_batches, 2);
    link.handle_reply(b"s0", now);
    // The snapshot is loaded, but batches after it were lost: ask again.
    assert_eq!(link.poll_transmit(now), Some(sent(LinkRequest::EntireWorkflow)));
    link.handle_published(b"all", b"d9", now);
    link.handle_reply(b"s1", now);
    assert_eq!(link.store().log, ["snapshot s0", "snapshot s1", "deltas d9"]);
}

#[test]
fn a_silent_scheduler_is_probed_and_a_dead_one_noticed() {
    let start = Instant::now();
    let mut link = live(start);
    let idle = link.poll_timeout().unwrap();
    assert_eq!(idle, start + Duration::from_secs(30));
    link.handle_timeout(idle);
    assert_eq!(
        link.poll_transmit(idle),
        Some(sent(LinkRequest::DataElements(Kind::Workflow)))
    );
    // No answer: the scheduler died without a word.
    let deadline = link.poll_timeout().unwrap();
    assert_eq!(deadline, idle + Duration::from_secs(5));
    link.handle_timeout(deadline);
    assert!(matches!(link.state(), LinkState::NoAnswer { message } if message.contains("stopped answering")));

    // A live scheduler answers, and the next probe waits for the next silence.
    let mut link = live(start);
    link.handle_timeout(idle);
    link.poll_transmit(idle);
    link.handle_reply(b"wf", idle);
    assert_eq!(link.store().log.last().unwrap(), "replace workflow wf");
    assert_eq!(link.poll_timeout(), Some(idle + Duration::from_secs(30)));
    // Deltas count as being heard from.
    let later = idle + Duration::from_secs(20);
    link.handle_published(b"all", b"d", later);
    assert_eq!(link.poll_timeout(), Some(later + Duration::from_secs(30)));
}

#[test]
fn a_refused_key_is_said_at_once_and_kept_through_retries() {
    let now = Instant::now();
    let mut link = Link::new(config(), Recorder::default());
    link.poll_transmit(now);
    link.handle_handshake(Handshake::Succeeded);
    assert_eq!(link.state(), &LinkState::Joining);
    link.handle_handshake(Handshake::Refused { status: 400 });
    let LinkState::Refused { message } = link.state().clone() else {
        panic!("{:?}", link.state())
    };
    assert!(
        message.contains("refused this client's key (status 400)"),
        "{message}"
    );
    assert!(message.contains("client_public_keys"), "{message}");
    // The request still times out and is retried, but the state keeps the reason.
    let deadline = link.poll_timeout().unwrap();
    link.handle_timeout(deadline);
    assert_eq!(link.poll_transmit(deadline), Some(Transmit::ReopenRequestSocket));
    assert_eq!(link.state(), &LinkState::Refused { message });
    // Once admitted, an answer puts it right.
    link.poll_transmit(deadline);
    link.handle_reply(b"s0", deadline);
    assert_eq!(link.state(), &LinkState::Live);

    let mut link = Link::new(config(), Recorder::default());
    link.handle_handshake(Handshake::Failed);
    assert!(matches!(link.state(), LinkState::Refused { message } if message.contains("server.key")));
}

#[test]
fn a_full_queue_while_refetching_takes_one_snapshot() {
    let now = Instant::now();
    let mut small = config();
    small.max_queued_bytes = 10;
    let mut link = Link::new(small, Recorder::default());
    link.poll_transmit(now);
    link.handle_reply(b"s0", now);
    link.handle_published(b"all", b"bad:jobs", now);
    assert_eq!(
        link.poll_transmit(now),
        Some(sent(LinkRequest::DataElements(Kind::Jobs)))
    );
    link.handle_published(b"all", b"123456", now);
    link.handle_published(b"all", b"789012", now);
    link.handle_reply(b"jobs", now);
    assert_eq!(link.poll_transmit(now), Some(sent(LinkRequest::EntireWorkflow)));
    link.handle_published(b"all", b"d9", now);
    link.handle_reply(b"s1", now);
    assert_eq!(link.poll_transmit(now), None, "one snapshot is enough");
    assert_eq!(
        link.store().log[3..],
        ["snapshot s1".to_owned(), "deltas d9".to_owned()]
    );
}
