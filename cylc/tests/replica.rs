//! A replica built from a real scheduler's snapshot and `all` messages (cylc-flow
//! 8.5.4, `tests/fixtures/small`) agrees with the scheduler at every step.

mod common;

use clonewire_cylc::{CylcStore, Kind};
use common::{fixture, frames, store};

const DIR: &str = "small";

fn path(file: &str) -> String {
    format!("{DIR}/{file}")
}

/// Asserts that two stores hold the same data and show the same topics.
fn assert_same(ours: &CylcStore, theirs: &CylcStore) {
    for kind in Kind::APPLY_ORDER {
        assert_eq!(
            ours.topic(kind).to_value(),
            theirs.topic(kind).to_value(),
            "topic {}",
            kind.topic()
        );
        assert_eq!(
            ours.topic(kind).hash(),
            theirs.topic(kind).hash(),
            "hash of {}",
            kind.topic()
        );
        assert_eq!(ours.len(kind), theirs.len(kind), "{} count", kind.cylc_name());
    }
    assert!(ours.same_data(theirs), "the protobuf stores differ");
}

#[test]
fn every_checksum_of_a_real_run_verifies() {
    let mut replica = store(&path("entire-before.pb"));
    let frames = frames(&path("all.frames"));
    assert!(
        frames.len() >= 8,
        "the capture holds a run: {} frames",
        frames.len()
    );
    let mut checked = 0;
    let mut pruned_somewhere = false;
    for (i, frame) in frames.iter().enumerate() {
        let applied = replica.apply_bytes(frame).expect("a real delta applies");
        for check in &applied.checks {
            assert!(check.ok(), "frame {i}: {check:?}");
            checked += 1;
        }
        assert!(applied.time.is_some(), "frame {i} carries its batch time");
        pruned_somewhere |= applied.changes("taskProxies").is_some_and(|changes| {
            changes
                .leaves
                .iter()
                .any(|c| c.path.len() == 3 && c.path[2] == "id" && c.new.is_none())
        });
        // The topics always equal the mapping of the store, though only patches
        // built from the touched elements were applied to them.
        for kind in Kind::APPLY_ORDER {
            assert_eq!(
                replica.topic(kind).to_value(),
                replica.topic_value(kind),
                "frame {i} {}",
                kind.topic()
            );
        }
    }
    assert!(checked > 20, "only {checked} checksums were checked");
    assert!(pruned_somewhere, "the run pruned task proxies");
}

#[test]
fn the_replica_ends_as_the_schedulers_own_snapshot() {
    let mut replica = store(&path("entire-before.pb"));
    for frame in frames(&path("all.frames")) {
        replica.apply_bytes(&frame).expect("a real delta applies");
    }
    assert_same(&replica, &store(&path("entire-after.pb")));
}

#[test]
fn replace_all_reports_what_a_snapshot_changes() {
    let mut replica = store(&path("entire-before.pb"));
    let after = clonewire_cylc::store::decode_entire_workflow(&fixture(&path("entire-after.pb"))).unwrap();
    let applied = replica.replace_all(&after).unwrap();
    assert!(applied.changes("taskProxies").is_some_and(|c| !c.is_empty()));
    assert_same(&replica, &store(&path("entire-after.pb")));
}

#[test]
fn a_dropped_message_is_caught_and_repaired_by_refetching_types() {
    let frames = frames(&path("all.frames"));
    // Drop each message in turn: the checksums of a later batch must notice, and
    // the scheduler's `pb_data_elements` replies must repair the replica.
    // The capture ends with a batch of element changes and then one that touches
    // only the workflow (no checksum): only a later element batch can notice a loss,
    // so the last two are left out.
    let mut caught = 0;
    let droppable = frames.len() - 2;
    for dropped in 0..droppable {
        let mut replica = store(&path("entire-before.pb"));
        let mut mismatched = std::collections::BTreeSet::new();
        for (i, frame) in frames.iter().enumerate() {
            if i != dropped {
                let applied = replica.apply_bytes(frame).unwrap();
                mismatched.extend(applied.mismatches());
            }
        }
        if mismatched.is_empty() {
            continue;
        }
        caught += 1;
        for kind in mismatched {
            let reply = fixture(&path(&format!("elements-{}.pb", kind.cylc_name())));
            replica.replace_type(kind, &reply).unwrap();
            assert_eq!(
                replica.checksum(kind),
                store(&path("entire-after.pb")).checksum(kind)
            );
        }
        for kind in Kind::APPLY_ORDER {
            assert_eq!(replica.topic(kind).to_value(), replica.topic_value(kind));
        }
    }
    assert_eq!(caught, droppable, "every dropped batch is caught by a later one");
}

#[test]
fn a_batch_already_in_the_snapshot_changes_nothing() {
    let frames = frames(&path("all.frames"));
    let mut replica = store(&path("entire-before.pb"));
    replica.apply_bytes(&frames[0]).unwrap();
    replica.apply_bytes(&frames[1]).unwrap();
    let settled = replica.clone();
    // As if the snapshot had been taken after these batches and they arrived again.
    let again = replica.apply_bytes(&frames[1]).unwrap();
    assert!(again.topics.is_empty(), "{:?}", again.topics);
    assert!(again.checks.iter().all(|c| c.ok()));
    assert!(replica.same_data(&settled));
}

#[test]
fn garbage_is_refused_and_changes_nothing() {
    let mut replica = store(&path("entire-before.pb"));
    let untouched = replica.clone();
    for garbage in [
        &[0xff_u8; 12][..],
        b"\x0a\x05ab",
        &fixture(&path("all.frames"))[..7],
    ] {
        let err = replica.apply_bytes(garbage).unwrap_err();
        assert!(err.to_string().contains("not a Cylc AllDeltas message"), "{err}");
    }
    let err = replica.replace_type(Kind::TaskProxies, &[0xff; 9]).unwrap_err();
    assert!(err.to_string().contains("task_proxies"), "{err}");
    let reply = fixture(&path("elements-task_proxies.pb"));
    let err = replica.replace_type_named("task_proxy", &reply).unwrap_err();
    assert!(
        err.to_string()
            .contains("\"task_proxy\" is not a Cylc element type"),
        "{err}"
    );
    assert_same(&replica, &untouched);
    let err = CylcStore::from_entire_workflow_bytes(b"{\"error\": \"no\"}").unwrap_err();
    assert!(!err.to_string().is_empty());
}
