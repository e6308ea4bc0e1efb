//! The client's one store: a copy of each (workflow, topic) the merged subscription
//! selects, checked on every message. A delta is applied only when its `prev` chains
//! to the last message applied; after applying, the copy's topic hash (suite-root
//! paths, so it is the projection hash the relay computed) must equal the message's
//! `hash`. A message that fails either check is undone, so the store only ever holds
//! verified data, and the (workflow, topic) waits for a fresh snapshot.

use std::collections::BTreeMap;

use clonewire_core::protocol::client::{RelayMessage, Resume, ResumePoint};
use clonewire_core::{Changes, Hash, Seq, Topic};
use serde_json::Value;

/// A (workflow, topic) pair: the unit of chaining, hashing and resync.
pub type TopicKey = (String, String);

/// The client's copy of one (workflow, topic).
#[derive(Clone, Debug)]
pub struct TopicCopy {
    /// The projected topic value, holding only leaves the merged subscription selects.
    pub topic: Topic,
    /// The suite epoch of the last message applied.
    pub epoch: String,
    /// The seq of the last message applied, `None` before any.
    pub seq: Option<Seq>,
    /// False from a failed check until the next good snapshot: deltas are ignored then.
    pub verified: bool,
    /// Snapshots in a row whose hash did not check (to stop asking after a few).
    pub bad_snapshots: u32,
}

impl TopicCopy {
    fn new(topic: &str) -> TopicCopy {
        TopicCopy {
            topic: Topic::new(topic),
            epoch: String::new(),
            seq: None,
            verified: true,
            bad_snapshots: 0,
        }
    }
}

/// Why a message was not applied. The store is left as it was before the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reject {
    /// The delta's `prev` is not the seq of the last message applied.
    WrongPrev {
        /// The seq of the last message applied.
        expected: Option<Seq>,
        /// The delta's `prev`.
        got: Option<Seq>,
    },
    /// A delta from an epoch other than the copy's (a new epoch comes as a snapshot).
    WrongEpoch,
    /// The patch or value is not a JSON object (or null).
    BadPatch,
    /// After applying, the copy's hash is not the message's `hash`.
    HashMismatch {
        /// The message's hash.
        expected: Hash,
        /// The copy's hash after applying.
        got: Hash,
    },
}

/// Where a delta sits in its (workflow, topic)'s chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chain {
    /// The seq it follows (`None`: the first message on this connection).
    pub prev: Option<Seq>,
    /// Its own seq.
    pub seq: Seq,
}

/// What became of one snapshot or delta.
#[derive(Clone, Debug, PartialEq)]
pub enum ApplyOutcome {
    /// Applied and verified; these leaves changed (possibly none).
    Applied(Changes),
    /// Failed a check and was undone: the caller asks for a fresh snapshot.
    Rejected(Reject),
    /// A delta for a copy that awaits a snapshot: dropped without a word.
    Ignored,
}

/// Every (workflow, topic) copy the client holds.
#[derive(Clone, Debug, Default)]
pub struct Store {
    /// By workflow, then topic: looked up by `&str` without allocating.
    replicas: BTreeMap<String, BTreeMap<String, TopicCopy>>,
}

impl Store {
    /// An empty store.
    pub fn new() -> Store {
        Store::default()
    }

    /// One copy, if the client has heard of it.
    pub fn get(&self, workflow: &str, topic: &str) -> Option<&TopicCopy> {
        self.replicas.get(workflow)?.get(topic)
    }

    /// Every copy, ordered by workflow then topic.
    pub fn iter(&self) -> impl Iterator<Item = ((&String, &String), &TopicCopy)> {
        self.replicas
            .iter()
            .flat_map(|(w, topics)| topics.iter().map(move |(t, r)| ((w, t), r)))
    }

    /// A copy, made empty when the client had not heard of it.
    fn entry(&mut self, workflow: &str, topic: &str) -> &mut TopicCopy {
        if self.get(workflow, topic).is_none() {
            // Only the first message of a (workflow, topic) pays for its keys.
            self.replicas
                .entry(workflow.to_owned())
                .or_default()
                .insert(topic.to_owned(), TopicCopy::new(topic));
        }
        match self
            .replicas
            .get_mut(workflow)
            .and_then(|topics| topics.get_mut(topic))
        {
            Some(replica) => replica,
            None => unreachable!("inserted just above"),
        }
    }

    /// Replaces a copy with a snapshot's value when its hash checks. A snapshot is
    /// always accepted whatever came before; an empty one (`{}`, hash 0) drops the data
    /// but keeps the seq, so a later delta chaining to it is accepted.
    pub fn snapshot(
        &mut self,
        workflow: &str,
        topic: &str,
        epoch: &str,
        seq: Seq,
        hash: Hash,
        value: &Value,
    ) -> ApplyOutcome {
        let replica = self.entry(workflow, topic);
        let Ok(fresh) = Topic::from_value(topic, value) else {
            replica.verified = false;
            replica.bad_snapshots += 1;
            return ApplyOutcome::Rejected(Reject::BadPatch);
        };
        if fresh.hash() != hash {
            replica.verified = false;
            replica.bad_snapshots += 1;
            return ApplyOutcome::Rejected(Reject::HashMismatch {
                expected: hash,
                got: fresh.hash(),
            });
        }
        // Checked: now take the exact difference (skipping equal subtrees), which is
        // what the views are told.
        let changes = replica.topic.replace_with(fresh);
        replica.epoch = epoch.to_owned();
        replica.seq = Some(seq);
        replica.verified = true;
        replica.bad_snapshots = 0;
        ApplyOutcome::Applied(changes)
    }

    /// Applies a delta when it chains (`prev` is the last seq applied, or `null` on an
    /// empty copy) and its hash checks afterwards; otherwise undoes it.
    pub fn delta(
        &mut self,
        workflow: &str,
        topic: &str,
        epoch: &str,
        chain: Chain,
        hash: Hash,
        patch: &Value,
    ) -> ApplyOutcome {
        let Chain { prev, seq } = chain;
        let replica = self.entry(workflow, topic);
        if !replica.verified {
            return ApplyOutcome::Ignored;
        }
        let empty = replica.topic.root().is_empty();
        // `prev: null` means the relay has sent nothing for this pair on this
        // connection; that is consistent with our copy only while it is empty.
        let chains = prev == replica.seq || (prev.is_none() && empty);
        if !chains {
            replica.verified = false;
            return ApplyOutcome::Rejected(Reject::WrongPrev {
                expected: replica.seq,
                got: prev,
            });
        }
        if prev.is_some() && replica.epoch != epoch {
            replica.verified = false;
            return ApplyOutcome::Rejected(Reject::WrongEpoch);
        }
        let Ok(changes) = replica.topic.apply(patch) else {
            replica.verified = false;
            return ApplyOutcome::Rejected(Reject::BadPatch);
        };
        let got = replica.topic.hash();
        if got != hash {
            // Undo: the store keeps showing the last verified data.
            replica.topic.apply_changes(&changes.inverse());
            replica.verified = false;
            return ApplyOutcome::Rejected(Reject::HashMismatch { expected: hash, got });
        }
        if replica.epoch != epoch {
            replica.epoch = epoch.to_owned();
        }
        replica.seq = Some(seq);
        ApplyOutcome::Applied(changes)
    }

    /// Applies a decoded `snapshot` or `delta` with [`Store::snapshot`] or
    /// [`Store::delta`]; `None` for messages that are not about a copy. The key names
    /// the copy, e.g. for the `resync` a rejection calls for.
    pub fn apply_message(&mut self, message: &RelayMessage) -> Option<(TopicKey, ApplyOutcome)> {
        let (workflow, topic, outcome) = match message {
            RelayMessage::Snapshot {
                workflow,
                topic,
                epoch,
                seq,
                hash,
                value,
            } => (
                workflow,
                topic,
                self.snapshot(workflow, topic, epoch, *seq, *hash, value),
            ),
            RelayMessage::Delta {
                workflow,
                topic,
                epoch,
                seq,
                prev,
                hash,
                patch,
                ..
            } => (
                workflow,
                topic,
                self.delta(
                    workflow,
                    topic,
                    epoch,
                    Chain {
                        prev: *prev,
                        seq: *seq,
                    },
                    *hash,
                    patch,
                ),
            ),
            _ => return None,
        };
        Some(((workflow.clone(), topic.clone()), outcome))
    }

    /// Marks a copy as awaiting a snapshot (its message could not even be decoded).
    pub fn distrust(&mut self, workflow: &str, topic: &str) {
        self.entry(workflow, topic).verified = false;
    }

    /// A new connection: copies whose snapshots kept failing may be asked for again.
    pub fn forgive(&mut self) {
        for replica in self.replicas.values_mut().flat_map(BTreeMap::values_mut) {
            replica.bad_snapshots = 0;
        }
    }

    /// Forgets every copy of a workflow; returns, per topic, the leaves that went.
    pub fn remove_workflow(&mut self, workflow: &str) -> Vec<(String, Changes)> {
        let topics = self.replicas.remove(workflow).unwrap_or_default();
        topics
            .into_iter()
            .filter_map(|(topic, mut replica)| {
                let gone = replica.topic.replace_with(Topic::new(topic.as_str()));
                (!gone.is_empty()).then_some((topic, gone))
            })
            .collect()
    }

    /// Where each verified copy stands, for `subscribe` with `resume`.
    pub fn resume_points(&self) -> Resume {
        let mut resume = Resume::new();
        for ((workflow, topic), replica) in self.iter() {
            if let (true, Some(seq)) = (replica.verified, replica.seq) {
                resume.entry(workflow.clone()).or_default().insert(
                    topic.clone(),
                    ResumePoint {
                        epoch: replica.epoch.clone(),
                        seq,
                        hash: replica.topic.hash(),
                    },
                );
            }
        }
        resume
    }

    /// The copies that await a snapshot.
    pub fn unverified(&self) -> Vec<TopicKey> {
        self.iter()
            .filter(|(_, r)| !r.verified)
            .map(|((w, t), _)| (w.clone(), t.clone()))
            .collect()
    }
}
