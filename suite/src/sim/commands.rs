//! The commands a simulated workflow takes (docs/protocol.md, Commands: "our suites"):
//! `pause`, `resume`, `stop`, `hold`, `release`, `trigger`, `kill`, and `set` with the
//! output `succeeded` or `failed`. The REP thread resolves the task ids against its
//! copy of the store (so an id that matches nothing is refused at once) and queues an
//! [`Order`] for the player thread, which carries it out as the next event.

use std::sync::mpsc::{SyncSender, TrySendError};

use clonewire_core::protocol::command::{Command, CommandName, Outcome};
use clonewire_core::protocol::suite::{CommandReply, ErrorCode, ErrorReply};
use clonewire_core::{Document, Node};

use super::workflow::{Order, FAMILY_PROXIES, TASK_PROXIES, WORKFLOW};
use crate::commands::CommandHandler;

/// Orders waiting for the player at most; past it commands are answered `busy`.
pub(crate) const ORDERS_WAITING: usize = 64;
/// When a `busy` command may be tried again.
const RETRY_MS: u64 = 200;

/// The REP side of a simulator's commands.
pub(crate) struct SimCommands {
    pub(crate) orders: SyncSender<Order>,
}

impl CommandHandler for SimCommands {
    fn command(
        &self,
        command: &Command,
        _user: Option<&str>,
        store: &Document,
    ) -> Result<CommandReply, ErrorReply> {
        let status = store
            .topic(WORKFLOW)
            .and_then(|t| t.at(&["status"]))
            .and_then(|n| match n {
                Node::Leaf(leaf) => leaf.value.as_str().map(str::to_owned),
                Node::Object(_) => None,
            });
        if status.as_deref() == Some("stopped") {
            return Ok(refused("the workflow has stopped"));
        }
        let order = match order_for(command, store) {
            Ok(order) => order,
            Err(why) => return Ok(refused(&why)),
        };
        let what = describe(&order);
        match self.orders.try_send(order) {
            Ok(()) => Ok(CommandReply {
                outcome: Outcome::Queued,
                message: what,
            }),
            Err(TrySendError::Full(_)) => Err(ErrorReply {
                error: ErrorCode::Busy,
                message: "orders are waiting for the workflow; try again".into(),
                retry_ms: Some(RETRY_MS),
            }),
            Err(TrySendError::Disconnected(_)) => Ok(refused("the workflow has stopped")),
        }
    }
}

/// The order `command` makes, or why the simulator will not do it.
fn order_for(command: &Command, store: &Document) -> Result<Order, String> {
    let tasks = || resolve(store, &command.texts("tasks"));
    Ok(match command.name {
        CommandName::Pause => Order::Pause,
        CommandName::Resume => Order::Resume,
        CommandName::Stop => Order::Stop,
        CommandName::Hold => Order::Hold(tasks()?),
        CommandName::Release => Order::Release(tasks()?),
        CommandName::Trigger => Order::Trigger(tasks()?),
        CommandName::Kill => Order::Kill(tasks()?),
        CommandName::Set if command.args.contains_key("prerequisites") => {
            return Err("clonewire-sim sets outputs only, not prerequisites".into())
        }
        CommandName::Set => match command.texts("outputs").as_slice() {
            ["succeeded"] => Order::Succeed(tasks()?),
            ["failed"] => Order::Fail(tasks()?),
            _ => return Err("clonewire-sim sets the output succeeded or failed, one at a time".into()),
        },
        other => return Err(format!("clonewire-sim does not take {}", other.as_str())),
    })
}

fn refused(why: &str) -> CommandReply {
    CommandReply {
        outcome: Outcome::Refused,
        message: why.to_owned(),
    }
}

/// What was queued, for the person who asked.
fn describe(order: &Order) -> String {
    let tasks = |verb: &str, keys: &[String]| match keys {
        [one] => format!("{verb} {one}"),
        many => format!("{verb} {} tasks", many.len()),
    };
    match order {
        Order::Pause => "pausing".into(),
        Order::Resume => "resuming".into(),
        Order::Stop => "stopping".into(),
        Order::Hold(keys) => tasks("holding", keys),
        Order::Release(keys) => tasks("releasing", keys),
        Order::Trigger(keys) => tasks("triggering", keys),
        Order::Kill(keys) => tasks("killing", keys),
        Order::Succeed(keys) => tasks("setting succeeded for", keys),
        Order::Fail(keys) => tasks("setting failed for", keys),
    }
}

/// The task keys (`cycle/name`) that Cylc-style ids match: `CYCLE/NAME` (a task, or
/// a family: its tasks), `CYCLE` (every task of the cycle), with `*` and `?` globs in
/// either part. Every id must match something, or the command is refused with it.
fn resolve(store: &Document, ids: &[&str]) -> Result<Vec<String>, String> {
    let proxies = store.topic(TASK_PROXIES).map(|t| t.root());
    let families = store.topic(FAMILY_PROXIES).map(|t| t.root());
    let mut keys = Vec::new();
    for id in ids {
        let (cycle, name) = id.split_once('/').unwrap_or((id, "*"));
        let family = families.into_iter().flat_map(|f| f.iter()).any(|(key, _)| {
            key.split_once('/')
                .is_some_and(|(c, f)| glob(cycle, c) && f == name)
        });
        let before = keys.len();
        for (key, entry) in proxies.into_iter().flat_map(|p| p.iter()) {
            let Some((c, n)) = key.split_once('/') else {
                continue;
            };
            if !glob(cycle, c) {
                continue;
            }
            let member = family && (name == "root" || first_parent_is(entry, c, name));
            if (glob(name, n) || member) && !keys.iter().any(|k| k == key) {
                keys.push(key.to_owned());
            }
        }
        if keys.len() == before {
            let shown: String = id.chars().take(80).collect();
            return Err(format!("no task matches {shown}"));
        }
    }
    Ok(keys)
}

/// True when a task proxy's `firstParent` is the family `name` of cycle `cycle`.
fn first_parent_is(entry: &Node, cycle: &str, name: &str) -> bool {
    let Node::Object(entry) = entry else { return false };
    match entry.get("firstParent") {
        Some(Node::Leaf(leaf)) => leaf
            .value
            .as_str()
            .is_some_and(|p| p.ends_with(&format!("//{cycle}/{name}"))),
        _ => false,
    }
}

/// Shell-style matching of `text` against `pattern` (`*`: any run, `?`: one char).
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}
