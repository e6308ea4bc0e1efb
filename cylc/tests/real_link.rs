//! The link against real Cylc 8 schedulers (simulation mode).

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use clonewire_cylc::contact::Contact;
use clonewire_cylc::driver::Driver;
use clonewire_cylc::keys;
use clonewire_cylc::link::{DataStore, LinkConfig, LinkEvent, LinkState, StoreOutcome};
use clonewire_cylc::replica::CylcReplica;
use clonewire_cylc::testing::{entire_workflow, Sandbox, SMALL_FLOW};
use clonewire_cylc::{CylcStore, Kind};
use clonewire_zmq::sockets::{CurveClient, CurveKeyPair};
use support::WireStore;

/// Steps `driver` until `done` holds, collecting events; fails after `limit`. Each
/// step must come back within its own bound, however the scheduler behaves.
fn run_until<S: DataStore<Changes = usize>>(
    driver: &mut Driver<S>,
    limit: Duration,
    events: &mut Vec<LinkEvent<S::Changes>>,
    mut done: impl FnMut(&Driver<S>, &[LinkEvent<S::Changes>]) -> bool,
) {
    let deadline = Instant::now() + limit;
    while !done(driver, events) {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?}; state {:?}, events {events:?}",
            driver.link().state()
        );
        let before = Instant::now();
        driver.step(Duration::from_millis(200)).unwrap();
        assert!(before.elapsed() < Duration::from_secs(2), "a step blocked");
        events.extend(std::iter::from_fn(|| driver.poll_event()));
    }
}

fn fast(config: &mut LinkConfig) {
    config.retry.request_timeout = Duration::from_secs(2);
}

#[test]
fn joins_a_real_scheduler_and_follows_its_deltas() {
    let mut sandbox = Sandbox::new();
    let run = sandbox.play("demo/run1", SMALL_FLOW);
    let ctx = zmq::Context::new();
    let mut driver = Driver::open(&ctx, &run, WireStore::default(), fast).unwrap();
    let mut events = Vec::new();
    run_until(&mut driver, Duration::from_secs(60), &mut events, |d, _| {
        d.link().state() == &LinkState::Live && d.link().store().batches >= 2
    });
    let store = driver.link().store();
    // PbEntireWorkflow: workflow = 1 always; tasks, task proxies etc. follow.
    assert_eq!(
        store.snapshot_fields.first(),
        Some(&1),
        "{:?}",
        store.snapshot_fields
    );
    assert!(store.snapshot_fields.len() > 4, "{:?}", store.snapshot_fields);
    // PbWorkflow (Cylc 8.5): name = 3, port = 6.
    let top = support::fields(&store.snapshot).unwrap();
    let Some((1, support::Wire::Bytes(workflow))) = top.first() else {
        panic!("no workflow in {top:?}")
    };
    let workflow = support::fields(workflow).unwrap();
    let field = |n| workflow.iter().find(|(number, _)| *number == n).map(|(_, v)| *v);
    assert_eq!(field(3), Some(support::Wire::Bytes(b"demo/run1")));
    let contact = Contact::load(&run).unwrap();
    assert_eq!(field(6), Some(support::Wire::Varint(u64::from(contact.port))));
    assert!(events.iter().any(|e| matches!(e, LinkEvent::Snapshot(_))));
    assert_eq!(driver.link().stats().timeouts, 0);
}

/// A store whose first batch "mismatches" task proxies, so the link re-fetches them
/// from the real scheduler with `pb_data_elements`.
#[derive(Default)]
struct MismatchOnce {
    inner: WireStore,
    told: bool,
}

impl DataStore for MismatchOnce {
    type Error = String;
    type Changes = usize;
    fn load_snapshot(&mut self, payload: &[u8]) -> Result<usize, String> {
        self.inner.load_snapshot(payload)
    }
    fn apply_deltas(&mut self, payload: &[u8]) -> Result<StoreOutcome<usize>, String> {
        let mut outcome = self.inner.apply_deltas(payload)?;
        if !std::mem::replace(&mut self.told, true) {
            outcome.mismatched.push(Kind::TaskProxies);
        }
        Ok(outcome)
    }
    fn replace_elements(&mut self, kind: Kind, payload: &[u8]) -> Result<StoreOutcome<usize>, String> {
        self.inner.replace_elements(kind, payload)
    }
}

#[test]
fn a_mismatch_refetches_the_type_from_a_real_scheduler() {
    let mut sandbox = Sandbox::new();
    let run = sandbox.play("refetch", SMALL_FLOW);
    let ctx = zmq::Context::new();
    let mut driver = Driver::open(&ctx, &run, MismatchOnce::default(), fast).unwrap();
    let mut events = Vec::new();
    run_until(&mut driver, Duration::from_secs(60), &mut events, |_, events| {
        events
            .iter()
            .any(|e| matches!(e, LinkEvent::Refetched(Kind::TaskProxies, _)))
    });
    // The reply is TaskProxiesDelta: time = 1 (a double), then the proxies in `added`.
    assert_eq!(driver.link().store().inner.replaced, [Kind::TaskProxies]);
    assert!(events.contains(&LinkEvent::Mismatch(vec![Kind::TaskProxies])));
    assert!(
        !events.iter().any(|e| matches!(e, LinkEvent::Problem(_))),
        "{events:?}"
    );
}

/// Follows the workflow at `run` with `curve` instead of its own keys, until the
/// link says why it gets nothing; returns that message.
fn refused_with(run: &Path, curve: CurveClient) -> String {
    let contact = Contact::load(run).unwrap();
    let mut config = LinkConfig::new(contact.req_endpoint(), "test");
    fast(&mut config);
    let ctx = zmq::Context::new();
    let mut driver = Driver::connect(&ctx, &contact, curve, config, WireStore::default()).unwrap();
    let mut events = Vec::new();
    let start = Instant::now();
    run_until(&mut driver, Duration::from_secs(10), &mut events, |d, _| {
        matches!(d.link().state(), LinkState::Refused { .. })
    });
    assert!(start.elapsed() < Duration::from_secs(3), "{:?}", start.elapsed());
    // It keeps trying, never blocking, never getting in, and keeps the reason.
    let until = Instant::now() + Duration::from_secs(5);
    run_until(&mut driver, Duration::from_secs(10), &mut events, |_, _| {
        Instant::now() > until
    });
    assert_eq!(driver.link().stats().snapshots, 0);
    assert!(driver.link().stats().timeouts >= 1);
    let LinkState::Refused { message } = driver.link().state() else {
        panic!("{:?}", driver.link().state())
    };
    assert!(message.contains(&contact.req_endpoint()), "{message}");
    message.clone()
}

#[test]
fn a_foreign_key_or_server_key_gets_a_clear_state_within_seconds() {
    let mut sandbox = Sandbox::new();
    let run = sandbox.play("foreign", SMALL_FLOW);
    let real = keys::workflow_client(&run.join(".service")).unwrap();

    let foreign_client = CurveClient {
        server_key: real.server_key.clone(),
        keys: CurveKeyPair::generate().unwrap(),
    };
    let message = refused_with(&run, foreign_client);
    assert!(
        message.contains("refused this client's key (status 400)"),
        "{message}"
    );

    let foreign_server = CurveClient {
        server_key: CurveKeyPair::generate().unwrap().public,
        keys: real.keys,
    };
    let message = refused_with(&run, foreign_server);
    assert!(message.contains("server.key"), "{message}");
}

#[test]
fn cylc_stop_stops_the_link() {
    let mut sandbox = Sandbox::new();
    let run = sandbox.play("stopping", SMALL_FLOW);
    let ctx = zmq::Context::new();
    let mut driver = Driver::open(&ctx, &run, WireStore::default(), fast).unwrap();
    let mut events = Vec::new();
    run_until(&mut driver, Duration::from_secs(60), &mut events, |d, _| {
        d.link().state() == &LinkState::Live
    });
    sandbox.stop("stopping");
    run_until(&mut driver, Duration::from_secs(30), &mut events, |d, _| {
        d.link().is_stopped()
    });
    let LinkState::Stopped { reason } = driver.link().state() else {
        unreachable!()
    };
    assert!(!reason.is_empty());
    assert!(!Path::new(&run).join(".service/contact").exists());
}

#[test]
fn a_dead_scheduler_gets_a_clear_state_and_never_blocks() {
    // A port nobody listens on: the contact file of a scheduler that was killed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let text = format!(
        "CYLC_WORKFLOW_HOST=127.0.0.1\nCYLC_WORKFLOW_PORT={port}\nCYLC_WORKFLOW_PUBLISH_PORT={port}\n"
    );
    let contact = Contact::parse(&text).unwrap();
    let keys = CurveKeyPair::generate().unwrap();
    let curve = CurveClient {
        server_key: keys.public.clone(),
        keys,
    };
    let mut config = LinkConfig::new(contact.req_endpoint(), "test");
    fast(&mut config);
    let ctx = zmq::Context::new();
    let mut driver = Driver::connect(&ctx, &contact, curve, config, WireStore::default()).unwrap();
    let mut events = Vec::new();
    let start = Instant::now();
    run_until(&mut driver, Duration::from_secs(10), &mut events, |d, _| {
        matches!(d.link().state(), LinkState::NoAnswer { .. })
    });
    assert!(start.elapsed() < Duration::from_secs(4), "{:?}", start.elapsed());
    let LinkState::NoAnswer { message } = driver.link().state() else {
        unreachable!()
    };
    assert!(message.contains("is the scheduler alive"), "{message}");
}

/// Steps a replica's driver until no batch has come for `quiet`.
fn settle<S: DataStore<Changes = clonewire_cylc::Applied>>(driver: &mut Driver<S>, quiet: Duration) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = Instant::now();
    while last.elapsed() < quiet {
        assert!(Instant::now() < deadline, "the workflow never settled");
        driver.step(Duration::from_millis(100)).unwrap();
        while let Some(event) = driver.poll_event() {
            if !matches!(event, LinkEvent::State(_)) {
                last = Instant::now();
            }
        }
    }
}

/// Runs a workflow with `store` until `batches` batches were applied, pauses it,
/// lets it settle and checks the replica holds exactly what the scheduler holds.
fn replica_matches_the_scheduler<S>(id: &str, store: S, batches: u64) -> Driver<S>
where
    S: DataStore<Changes = clonewire_cylc::Applied> + AsRef<CylcReplica>,
{
    let mut sandbox = Sandbox::new();
    let run = sandbox.play(id, SMALL_FLOW);
    let ctx = zmq::Context::new();
    let mut driver = Driver::open(&ctx, &run, store, fast).unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    while driver.link().stats().batches < batches {
        assert!(Instant::now() < deadline, "{:?}", driver.link().stats());
        driver.step(Duration::from_millis(100)).unwrap();
        while driver.poll_event().is_some() {}
    }
    sandbox.cylc(&["pause", id]);
    // A batch may still be on its way when the scheduler answers; compare once quiet.
    settle(&mut driver, Duration::from_secs(3));
    let theirs = CylcStore::from_entire_workflow_bytes(&entire_workflow(&run)).unwrap();
    let ours = driver.link().store().as_ref().store();
    let differ: Vec<Kind> = Kind::APPLY_ORDER
        .into_iter()
        .filter(|k| ours.topic_value(*k) != theirs.topic_value(*k))
        .collect();
    for k in &differ {
        eprintln!(
            "OURS {k:?} {}\nTHEIRS {}",
            ours.topic_value(*k),
            theirs.topic_value(*k)
        );
    }
    assert!(
        ours.same_data(&theirs),
        "the replica differs from the scheduler's store in {differ:?}; {:?}",
        driver.link().stats()
    );
    assert!(ours.len(Kind::TaskProxies) > 0);
    driver
}

#[test]
fn a_replica_equals_the_schedulers_store_after_a_pause() {
    let driver = replica_matches_the_scheduler("replica", CylcReplica::new(), 5);
    assert_eq!(driver.link().state(), &LinkState::Live);
}

/// A replica that loses its third `all` message, as a congested socket would.
struct DropsOne {
    replica: CylcReplica,
    seen: usize,
}

impl AsRef<CylcReplica> for DropsOne {
    fn as_ref(&self) -> &CylcReplica {
        &self.replica
    }
}

impl DataStore for DropsOne {
    type Error = clonewire_cylc::CylcError;
    type Changes = clonewire_cylc::Applied;
    fn load_snapshot(&mut self, payload: &[u8]) -> Result<Self::Changes, Self::Error> {
        self.replica.load_snapshot(payload)
    }
    fn apply_deltas(&mut self, payload: &[u8]) -> Result<StoreOutcome<Self::Changes>, Self::Error> {
        self.seen += 1;
        if self.seen == 3 {
            return Ok(StoreOutcome::default());
        }
        self.replica.apply_deltas(payload)
    }
    fn replace_elements(
        &mut self,
        kind: Kind,
        payload: &[u8],
    ) -> Result<StoreOutcome<Self::Changes>, Self::Error> {
        self.replica.replace_elements(kind, payload)
    }
}

#[test]
fn a_dropped_batch_is_caught_by_the_checksums_and_repaired() {
    let store = DropsOne {
        replica: CylcReplica::new(),
        seen: 0,
    };
    // Cylc sends a type's checksum with its changes only: run on until every type
    // the lost batch touched has changed again.
    let driver = replica_matches_the_scheduler("dropped", store, 15);
    let stats = driver.link().stats();
    assert!(stats.refetches >= 1, "{stats:?}");
}
