//! The relay's time from receiving a Cylc burst to queueing it to clients.
//!
//! One workflow followed as the relay follows a running Cylc scheduler, in-process
//! and without sockets: the sans-IO Cylc link ([`clonewire_cylc::link::Link`]) over a
//! [`CylcReplica`] joins from a `pb_entire_workflow` reply, then each `all` message is
//! handed to it as the driver would (`handle_published`); what it applied goes to
//! the workflow's [`SubscriptionViews`], which project, hash and queue it to every subscribed
//! client's [`Outbox`], as the link thread does. Timed: from the `all` bytes in hand
//! to the last client's outbox holding its delta (decode, Cylc's merge, checksums,
//! mapping, projection per distinct subscription, hashing, the frames' text).
//!
//! Bursts are the synthetic ones of `cylc/benches/support/workload.rs` (a release
//! of 100 or 1,000 tasks behind a gate), with the checksums Cylc would send, so the
//! link verifies them as it does a real scheduler's. Clients: the page's tree and
//! table views of the workflow and a `{ workflows }` (all fields) subscriber.
//!
//! `cargo bench -p clonewire-relay --bench cylc_burst` (`-- --quick`: fewer rounds).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clonewire_core::{Schema, Seq, Subscription, SubscriptionLimits, Topic};
use clonewire_cylc::link::{Link, LinkConfig, LinkEvent, LinkState, Transmit};
use clonewire_cylc::model::seq_for_time;
use clonewire_cylc::proto::AllDeltas;
use clonewire_cylc::replica::CylcReplica;
use clonewire_cylc::{Applied, CylcStore, Kind};
use clonewire_relay::internals::{
    ClientId, HistoryLimit, Outbox, OutboxCounters, Registry, ReplicaSource, SubscriptionViews,
};
use prost::Message;

#[path = "../../cylc/benches/support/workload.rs"]
mod workload;

/// The relay binary's allocator (`src/main.rs`), so the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const WORKFLOW: &str = "burst";

/// What the page's tree and table views ask for, and everything.
const QUERIES: [&str; 3] = [
    "{ workflows { familyProxies { name cyclePoint state stateTotals firstParent } \
     taskProxies { name cyclePoint state firstParent jobs } \
     jobs { state platform submitNum startedTime finishedTime } } }",
    "{ workflows { taskProxies { name cyclePoint state jobs } \
     jobs { state platform submitNum startedTime finishedTime } } }",
    "{ workflows }",
];

/// The link and what the views read: the replica's topics with their seqs.
struct Followed {
    link: Link<CylcReplica>,
    schema: Schema,
    seqs: BTreeMap<&'static str, Seq>,
}

impl ReplicaSource for Followed {
    fn epoch(&self) -> &str {
        "bench-run"
    }
    fn schema(&self) -> Option<&Schema> {
        Some(&self.schema)
    }
    fn topic(&self, name: &str) -> Option<(&Topic, Seq)> {
        let kind = Kind::APPLY_ORDER.into_iter().find(|k| k.topic() == name)?;
        let seq = self.seqs.get(kind.topic()).copied().unwrap_or_default();
        Some((self.link.store().store().topic(kind), seq))
    }
    fn topic_names(&self) -> Vec<String> {
        Kind::APPLY_ORDER.iter().map(|k| k.topic().to_owned()).collect()
    }
}

/// Each burst with the checksums a scheduler would send: those of its store after
/// the burst (the synthetic bursts carry none).
fn with_checksums(base: &CylcStore, bursts: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut store = base.clone();
    bursts
        .iter()
        .map(|bytes| {
            let mut deltas = AllDeltas::decode(bytes.as_slice()).expect("a burst decodes");
            store.apply_deltas(deltas.clone()).expect("a burst applies");
            let sum = |kind| store.checksum(kind);
            if let Some(d) = deltas.task_proxies.as_mut() {
                d.checksum = sum(Kind::TaskProxies).map(|c| c as i64);
            }
            if let Some(d) = deltas.jobs.as_mut() {
                d.checksum = sum(Kind::Jobs).map(|c| c as i64);
            }
            if let Some(d) = deltas.family_proxies.as_mut() {
                d.checksum = sum(Kind::FamilyProxies).map(|c| c as i64);
            }
            deltas.encode_to_vec()
        })
        .collect()
}

/// A workflow of `n` tasks joined by a link, with `clients` subscribers spread over
/// [`QUERIES`]; returns it with its views and the clients' outboxes.
fn join(n: usize, snapshot: &[u8], clients: usize) -> (Followed, SubscriptionViews, Vec<Arc<Outbox>>) {
    let mut link = Link::new(LinkConfig::new("tcp://127.0.0.1:9", "bench"), CylcReplica::new());
    let now = Instant::now();
    assert!(matches!(link.poll_transmit(now), Some(Transmit::Send(_))));
    link.handle_reply(snapshot, now);
    let mut followed = Followed {
        link,
        schema: clonewire_cylc::schema(),
        seqs: BTreeMap::new(),
    };
    let mut views = SubscriptionViews::new(Arc::from(WORKFLOW), HistoryLimit::steps(64));
    drain(&mut followed, &mut views);
    assert_eq!(followed.link.state(), &LinkState::Live, "{n} tasks");
    let registry = Registry::default();
    let counters = Arc::new(OutboxCounters::default());
    let outboxes: Vec<Arc<Outbox>> = (0..clients)
        .map(|i| {
            let sub = Subscription::parse(QUERIES[i % QUERIES.len()], &SubscriptionLimits::default())
                .expect("query");
            let outbox = Arc::new(Outbox::new(256 << 20, 512 << 20, counters.clone()));
            views.rebind(
                &followed,
                ClientId(i as u64),
                outbox.clone(),
                Some(registry.intern(sub)),
                None,
            );
            outbox
        })
        .collect();
    views.flush(&followed);
    for outbox in &outboxes {
        while outbox.pop().is_some() {}
    }
    (followed, views, outboxes)
}

/// Hands what the link applied to the views, numbering each topic's change as the
/// relay's Cylc upstream does (the scheduler's time in microseconds).
fn drain(followed: &mut Followed, views: &mut SubscriptionViews) {
    let mut applied: Vec<Applied> = Vec::new();
    while let Some(event) = followed.link.poll_event() {
        match event {
            LinkEvent::Snapshot(a) | LinkEvent::Deltas(a) => applied.push(a),
            LinkEvent::Mismatch(kinds) => panic!("the burst's checksums differ: {kinds:?}"),
            LinkEvent::Problem(p) => panic!("{p}"),
            _ => {}
        }
    }
    for a in applied {
        let derived = a.time.and_then(seq_for_time);
        for (topic, changes) in &a.topics {
            let prev = followed.seqs.get(topic).copied().unwrap_or_default();
            let seq = derived.filter(|s| *s > prev).unwrap_or(prev.next());
            followed.seqs.insert(topic, seq);
            views.on_changes(&*followed, topic, prev, seq, changes, a.time.map(|t| t * 1e3));
        }
    }
    views.flush(&*followed);
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn run(n: usize, rounds: usize, clients: usize) {
    let (snapshot, bursts) = workload::workload(n, rounds);
    let base = CylcStore::from_entire_workflow(&snapshot).expect("the workload loads");
    let bursts = with_checksums(&base, &bursts);
    let (mut followed, mut views, outboxes) = join(n, &snapshot.encode_to_vec(), clients);
    let (mut times, mut queued) = (Vec::new(), 0);
    for burst in &bursts {
        let start = Instant::now();
        followed.link.handle_published(b"all", burst, start);
        drain(&mut followed, &mut views);
        times.push(start.elapsed());
        queued = outboxes.iter().map(|o| o.bytes()).sum::<usize>();
        assert!(
            outboxes.iter().all(|o| o.bytes() > 0),
            "every client got the burst"
        );
        for outbox in &outboxes {
            while outbox.pop().is_some() {}
        }
    }
    let (low, high) = {
        let mut sorted = times.clone();
        sorted.sort();
        (sorted[0], sorted[sorted.len() - 1])
    };
    println!(
        "{n:>5}-task burst {:>7.1} KiB in  receive → queued to {clients} clients: median {:>7.2} ms (min {:.2}, max {:.2})  {:>7.1} KiB queued",
        bursts[0].len() as f64 / 1024.0,
        median(times).as_secs_f64() * 1e3,
        low.as_secs_f64() * 1e3,
        high.as_secs_f64() * 1e3,
        queued as f64 / 1024.0,
    );
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    println!("the relay's time from an `all` message in hand to its deltas queued to every client");
    println!("(in-process: Cylc link, replica, views, outboxes; no sockets), over a run of bursts");
    let (small, big) = if quick { (5, 3) } else { (41, 15) };
    run(100, small, 9);
    run(1_000, big, 9);
}
