//! Using the suite's answers: `hello`, the join snapshot, and the repair ladder
//! (replay, else hash-guided `hashes` + `get`, else a snapshot of the topic), as
//! docs/protocol.md, Suite link › Joining, describes.

use std::time::{Duration, Instant};

use clonewire_core::protocol::encode;
use clonewire_core::protocol::suite::{ErrorCode, ErrorReply, GetReply, HashesReply, ReplayReply};
use clonewire_core::{Changes, Hash, Seq, Topic};
use serde_json::Value;

use super::arrived::Reply;
use super::arrived::{build, BuiltSnapshot, Fresh};
use super::machine::{Machine, Phase};
use super::request::Pending;
use super::{FollowEvent, Rung};

/// Replays that bring no progress before the follower takes a snapshot instead.
const STUCK_REPLAYS: u32 = 2;
/// Differing children past which hash-guided repair fetches the whole topic instead.
const MAX_HASHED_CHILDREN: usize = 1_000;
/// Hash-guided attempts that raced with new deltas before a snapshot is taken instead.
const HASH_ATTEMPTS: u32 = 3;

impl Machine {
    pub(super) fn on_error_reply(
        &mut self,
        pending: &Pending,
        op: &'static str,
        error: ErrorReply,
        now: Instant,
    ) {
        match (error.error, pending) {
            (ErrorCode::Busy, _) => {
                self.stats.busy += 1;
                let hint = Duration::from_millis(error.retry_ms.unwrap_or(0));
                let wait = self
                    .requests
                    .back_off(now)
                    .max(hint)
                    .min(self.requests.policy().backoff_max.max(hint));
                self.requests.wait_until(now + wait);
                self.events.push_back(FollowEvent::Busy { op, retry_in: wait });
            }
            (code, Pending::Replay { topic, .. }) => {
                // `gone`, `unsupported` or anything else: the next rung is hash-guided.
                if let Some(replica) = self.topics.get_mut(topic) {
                    replica.distrust(Rung::Hashes);
                }
                if code != ErrorCode::Gone {
                    self.refused(op, code, error.message);
                }
            }
            (code, Pending::Hashes { topic } | Pending::Get { topic, .. }) => {
                // `hashes` and `get` are optional: the last rung is a snapshot.
                self.next_get = None;
                if let Some(replica) = self.topics.get_mut(topic) {
                    replica.distrust(Rung::Snapshot);
                }
                if code != ErrorCode::Unsupported {
                    self.refused(op, code, error.message);
                }
            }
            (code, _) => {
                self.refused(op, code, error.message);
                self.requests.back_off(now);
            }
        }
    }

    fn refused(&mut self, op: &'static str, code: ErrorCode, message: String) {
        self.events.push_back(FollowEvent::Refused { op, code, message });
    }

    pub(super) fn on_reply(&mut self, pending: Pending, reply: Reply, now: Instant) {
        let epoch = reply.epoch().to_owned();
        let same_epoch = self.epoch.as_deref() == Some(epoch.as_str());
        if !self.accept_epoch(&epoch) {
            return; // an old epoch's answer: the next request asks again
        }
        match reply {
            Reply::Hello(hello) => {
                self.name = hello.name;
                self.schema = hello.schema;
                self.heartbeat_ms = hello.heartbeat_ms.max(1);
                self.phase = match self.phase {
                    Phase::Greeting => Phase::Joining,
                    Phase::FollowingUngreeted => Phase::Following,
                    other => other,
                };
            }
            // Answers from before a new epoch was noticed describe nothing we hold.
            _ if !same_epoch => {}
            Reply::Snapshot(snapshot) => {
                let requested = match pending {
                    Pending::Snapshot { topics } => topics,
                    _ => None,
                };
                self.on_snapshot(build(snapshot), requested, now);
            }
            Reply::Built(snapshot) => {
                let requested = match pending {
                    Pending::Snapshot { topics } => topics,
                    _ => None,
                };
                self.on_snapshot(snapshot, requested, now);
            }
            Reply::Replay(replay) => {
                if let Pending::Replay { topic, .. } = pending {
                    self.on_replay(&topic, replay);
                }
            }
            Reply::Hashes(hashes) => {
                if let Pending::Hashes { topic } = pending {
                    self.on_hashes(topic, hashes);
                }
            }
            Reply::Get(get) => {
                self.next_get = None;
                if let Pending::Get {
                    topic,
                    seq,
                    hash,
                    keys,
                } = pending
                {
                    self.on_get(&topic, seq, hash, &keys, get);
                }
            }
        }
    }

    /// Hash-guided repair, first step: the suite's node hash of every child of the
    /// topic. Children whose hashes differ from ours (or exist on one side only) are
    /// fetched next with `get`; too many, and a snapshot is cheaper.
    fn on_hashes(&mut self, topic: String, reply: HashesReply) {
        let Some(replica) = self.topics.get_mut(&topic) else {
            return;
        };
        if replica.trusted {
            return; // repaired meanwhile
        }
        let ours = replica.topic.root();
        let mut keys: Vec<String> = reply
            .children
            .iter()
            .filter(|(k, h)| ours.get(k).map(|n| n.hash()) != Some(h.0))
            .map(|(k, _)| k.clone())
            .collect();
        keys.extend(
            ours.iter()
                .filter(|(k, _)| !reply.children.contains_key(*k))
                .map(|(k, _)| k.to_owned()),
        );
        if keys.len() > MAX_HASHED_CHILDREN {
            replica.distrust(Rung::Snapshot);
            return;
        }
        if keys.is_empty() && replica.topic.hash() == reply.hash {
            // Nothing differs: only the seq moves.
            self.settle(&topic, reply.seq, Changes::default());
            return;
        }
        self.next_get = Some(Pending::Get {
            topic,
            seq: reply.seq,
            hash: reply.hash,
            keys,
        });
    }

    /// Hash-guided repair, second step: the differing children's values replace ours;
    /// the topic hash must then be the one `hashes` reported at the same seq.
    fn on_get(&mut self, topic: &str, seq: Seq, hash: Hash, keys: &[String], reply: GetReply) {
        let Some(replica) = self.topics.get_mut(topic) else {
            return;
        };
        if replica.trusted {
            return;
        }
        if reply.seq != seq || reply.values.len() != keys.len() {
            // The topic moved between the two requests: try again, a few times.
            replica.stuck += 1;
            if replica.stuck >= HASH_ATTEMPTS {
                replica.distrust(Rung::Snapshot);
            }
            return;
        }
        // Each child is replaced whole: remove, then set (a merge patch cannot say
        // "replace this object").
        let removal: serde_json::Map<String, Value> = keys.iter().map(|k| (k.clone(), Value::Null)).collect();
        let fresh: serde_json::Map<String, Value> = keys
            .iter()
            .cloned()
            .zip(reply.values)
            .filter(|(_, v)| !v.is_null())
            .collect();
        let mut candidate = replica.topic.clone();
        let changes = match (
            candidate.apply(&Value::Object(removal)),
            candidate.apply(&Value::Object(fresh)),
        ) {
            (Ok(a), Ok(b)) => a.then(b),
            _ => {
                replica.distrust(Rung::Snapshot);
                return;
            }
        };
        if candidate.hash() != hash {
            replica.distrust(Rung::Snapshot);
            return;
        }
        replica.topic = candidate;
        self.settle(topic, seq, changes);
    }

    /// A hash-guided repair succeeded: the replica is the suite's at `seq`.
    fn settle(&mut self, topic: &str, seq: Seq, changes: Changes) {
        let Some(replica) = self.topics.get_mut(topic) else {
            return;
        };
        let prev = replica.seq;
        replica.trust(seq);
        self.stats.repairs_hashes += 1;
        self.events.push_back(FollowEvent::Reset {
            topic: topic.to_owned(),
            prev,
            seq,
            changes,
        });
        self.events.push_back(FollowEvent::Repaired {
            topic: topic.to_owned(),
            seq,
            rung: Rung::Hashes,
        });
        self.drain_queue(topic);
    }

    fn on_snapshot(&mut self, snapshot: BuiltSnapshot, requested: Option<Vec<String>>, now: Instant) {
        let join = !self.phase.joined();
        let mut bad = false;
        // Topics asked for but not in the reply hold nothing (seq 0), and so do, on a
        // join, topics we queued deltas for that the suite does not list.
        let mut absent: Vec<String> = match &requested {
            Some(names) => names.clone(),
            None => self.topics.keys().cloned().collect(),
        };
        absent.retain(|t| !snapshot.topics.contains_key(t));
        let listed = snapshot.topics.len();
        for (name, snap) in snapshot.topics {
            if !self.wants(&name) {
                continue;
            }
            let fresh = match snap.topic {
                Ok(fresh) => fresh,
                Err(e) => {
                    self.malformed(format!("snapshot of {name}: {e}"));
                    bad = true;
                    continue;
                }
            };
            if fresh.topic.hash() != snap.hash {
                self.stats.mismatches += 1;
                self.events.push_back(FollowEvent::Mismatch {
                    topic: name.clone(),
                    seq: snap.seq,
                    expected: snap.hash,
                    got: fresh.topic.hash(),
                    changes: Changes::default(),
                });
                self.replica(&name).distrust(Rung::Snapshot);
                bad = true;
                continue;
            }
            self.restore(&name, fresh, snap.seq, join);
        }
        absent.retain(|n| self.wants(n));
        for name in absent {
            let fresh = Fresh {
                topic: Topic::new(name.clone()),
                added: Changes::default(),
            };
            self.restore(&name, fresh, Seq::ZERO, join);
        }
        if join {
            self.phase = match self.phase {
                Phase::Greeting => Phase::FollowingUngreeted,
                _ => Phase::Following,
            };
            self.stats.joins += 1;
            self.events.push_back(FollowEvent::Joined {
                name: self.name.clone(),
                epoch: self.epoch.clone().unwrap_or_default(),
                topics: listed,
            });
        }
        if bad {
            self.requests.back_off(now);
        }
    }

    /// Installs a topic's value at `seq`, then applies what was queued after it.
    fn restore(&mut self, name: &str, fresh: Fresh, seq: Seq, join: bool) {
        let replica = self.replica(name);
        let was_trusted = replica.trusted && !join;
        let prev = replica.seq;
        let changes = if replica.topic.root().is_empty() {
            // What replacing would report: every leaf of the fresh value, added.
            replica.topic = fresh.topic;
            fresh.added
        } else {
            replica.topic.replace_with(fresh.topic)
        };
        replica.trust(seq);
        self.events.push_back(FollowEvent::Reset {
            topic: name.to_owned(),
            prev,
            seq,
            changes,
        });
        if !join && !was_trusted {
            self.stats.repairs_snapshot += 1;
            self.events.push_back(FollowEvent::Repaired {
                topic: name.to_owned(),
                seq,
                rung: Rung::Snapshot,
            });
        }
        self.drain_queue(name);
    }

    fn on_replay(&mut self, name: &str, replay: ReplayReply) {
        let Some(replica) = self.topics.get_mut(name) else {
            return;
        };
        if replica.trusted {
            return; // repaired meanwhile
        }
        let before = replica.seq;
        let mut current = before;
        replica.trusted = true;
        for delta in replay.deltas {
            if delta.seq <= current {
                continue;
            }
            if !delta.seq.follows(current) {
                if let Some(r) = self.topics.get_mut(name) {
                    r.distrust(Rung::Hashes);
                }
                self.malformed(format!("replay of {name} skips from {current} to {}", delta.seq));
                return;
            }
            let bytes = encode(&delta.patch).len();
            if !self.apply(name, delta.seq, &delta.patch, delta.hash, bytes, delta.time) {
                return; // distrusted, next rung chosen by apply
            }
            current = delta.seq;
        }
        self.drain_queue(name);
        let Some(replica) = self.topics.get_mut(name) else {
            return;
        };
        if replica.trusted {
            self.stats.repairs_replay += 1;
            self.events.push_back(FollowEvent::Repaired {
                topic: name.to_owned(),
                seq: replica.seq,
                rung: Rung::Replay,
            });
        } else if replica.seq == before {
            replica.stuck += 1;
            if replica.stuck >= STUCK_REPLAYS {
                replica.distrust(Rung::Hashes);
            }
        }
    }
}
