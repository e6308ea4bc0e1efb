//! The link against real Cylc 8 schedulers (simulation mode).

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use clonewire_cylc::contact::Contact;
use clonewire_cylc::driver::Driver;
use clonewire_cylc::keys;
use clonewire_cylc::link::{Event, LinkConfig, LinkState, Store};
use clonewire_cylc::request::ElementType;
use clonewire_suite::sockets::{CurveClient, CurveKeyPair};
use support::{Sandbox, WireStore, SMALL_FLOW};

/// Steps `driver` until `done` holds, collecting events; fails after `limit`. Each
/// step must come back within its own bound, however the scheduler behaves.
fn run_until<S: Store>(
    driver: &mut Driver<S>,
    limit: Duration,
    events: &mut Vec<Event>,
    mut done: impl FnMut(&Driver<S>, &[Event]) -> bool,
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
    config.request_timeout = Duration::from_secs(2);
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
    let id = b"/demo/run1";
    assert!(
        store.snapshot.windows(id.len()).any(|w| w == id),
        "the snapshot names the workflow"
    );
    assert!(events.contains(&Event::Snapshot));
    assert_eq!(driver.link().stats().timeouts, 0);
}

/// A store whose first batch "mismatches" task proxies, so the link re-fetches them
/// from the real scheduler with `pb_data_elements`.
#[derive(Default)]
struct MismatchOnce {
    inner: WireStore,
    told: bool,
}

impl Store for MismatchOnce {
    type Error = String;
    fn load_snapshot(&mut self, payload: &[u8]) -> Result<(), String> {
        self.inner.load_snapshot(payload)
    }
    fn apply_deltas(&mut self, payload: &[u8]) -> Result<Vec<ElementType>, String> {
        self.inner.apply_deltas(payload)?;
        if std::mem::replace(&mut self.told, true) {
            Ok(Vec::new())
        } else {
            Ok(vec![ElementType::TaskProxies])
        }
    }
    fn replace_elements(&mut self, kind: ElementType, payload: &[u8]) -> Result<bool, String> {
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
        events.contains(&Event::Refetched(ElementType::TaskProxies))
    });
    // The reply is TaskProxiesDelta: time = 1 (a double), then the proxies in `added`.
    assert_eq!(driver.link().store().inner.replaced, [ElementType::TaskProxies]);
    assert!(events.contains(&Event::Mismatch(vec![ElementType::TaskProxies])));
    assert!(
        !events.iter().any(|e| matches!(e, Event::Problem(_))),
        "{events:?}"
    );
}

#[test]
fn a_foreign_key_gets_a_clear_state_within_seconds() {
    let mut sandbox = Sandbox::new();
    let run = sandbox.play("foreign", SMALL_FLOW);
    let contact = Contact::load(&run).unwrap();
    let real = keys::workflow_client(&run.join(".service")).unwrap();
    let foreign = CurveClient {
        server_key: real.server_key,
        keys: CurveKeyPair::generate().unwrap(),
    };
    let mut config = LinkConfig::new(contact.req_endpoint(), "test");
    fast(&mut config);
    let ctx = zmq::Context::new();
    let mut driver = Driver::connect(&ctx, &contact, foreign, config, WireStore::default()).unwrap();
    let mut events = Vec::new();
    let start = Instant::now();
    run_until(&mut driver, Duration::from_secs(10), &mut events, |d, _| {
        matches!(d.link().state(), LinkState::NoAnswer { .. })
    });
    assert!(start.elapsed() < Duration::from_secs(5), "{:?}", start.elapsed());
    let LinkState::NoAnswer { message } = driver.link().state() else {
        unreachable!()
    };
    assert!(message.contains("key admitted"), "{message}");
    assert!(message.contains(&contact.req_endpoint()), "{message}");
    // It keeps trying without blocking, and never gets in.
    let until = Instant::now() + Duration::from_secs(3);
    run_until(&mut driver, Duration::from_secs(10), &mut events, |_, _| {
        Instant::now() > until
    });
    assert!(matches!(driver.link().state(), LinkState::NoAnswer { .. }));
    assert_eq!(driver.link().stats().snapshots, 0);
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
