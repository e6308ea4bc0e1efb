//! Commands (docs/protocol.md, Client link › Commands): what a client may ask a
//! workflow to do, checked here once for every kind of workflow. Names and arguments
//! are Cylc's own mutations'; [`Command::check`] accepts exactly the table of the
//! protocol, so whatever is forwarded (to a Cylc scheduler as GraphQL variables, to a
//! suite as a `command` request) is already well formed and bounded.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The longest `command` message a client may send, in bytes.
pub const MAX_COMMAND_BYTES: usize = 16 * 1024;
/// The longest client-chosen command id, in bytes.
pub const MAX_COMMAND_ID_BYTES: usize = 64;
/// The most items in one list argument (task ids, outputs, ...).
pub const MAX_LIST_ITEMS: usize = 1_000;

/// A command's name: one of Cylc's mutations that a user may run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CommandName {
    /// Stop submitting jobs (jobs running go on).
    Pause,
    /// Undo `pause`.
    Resume,
    /// Shut the workflow down.
    Stop,
    /// Reload the workflow's definition.
    Reload,
    /// Hold tasks: they are not submitted until released.
    Hold,
    /// Release held tasks.
    Release,
    /// Hold every task after a cycle point.
    SetHoldPoint,
    /// Undo `setHoldPoint`.
    ReleaseHoldPoint,
    /// Run tasks now.
    Trigger,
    /// Kill tasks' jobs.
    Kill,
    /// Poll tasks' jobs.
    Poll,
    /// Remove tasks from the workflow.
    Remove,
    /// Set tasks' outputs or prerequisites.
    Set,
    /// Change tasks' settings at run time.
    Broadcast,
    /// Change the scheduler's log level.
    SetVerbosity,
    /// Change how far the data store's graph window reaches.
    SetGraphWindowExtent,
    /// Satisfy an external trigger.
    ExtTrigger,
}

impl CommandName {
    /// Every command, in the protocol's order.
    pub const ALL: [CommandName; 17] = [
        CommandName::Pause,
        CommandName::Resume,
        CommandName::Stop,
        CommandName::Reload,
        CommandName::Hold,
        CommandName::Release,
        CommandName::SetHoldPoint,
        CommandName::ReleaseHoldPoint,
        CommandName::Trigger,
        CommandName::Kill,
        CommandName::Poll,
        CommandName::Remove,
        CommandName::Set,
        CommandName::Broadcast,
        CommandName::SetVerbosity,
        CommandName::SetGraphWindowExtent,
        CommandName::ExtTrigger,
    ];

    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            CommandName::Pause => "pause",
            CommandName::Resume => "resume",
            CommandName::Stop => "stop",
            CommandName::Reload => "reload",
            CommandName::Hold => "hold",
            CommandName::Release => "release",
            CommandName::SetHoldPoint => "setHoldPoint",
            CommandName::ReleaseHoldPoint => "releaseHoldPoint",
            CommandName::Trigger => "trigger",
            CommandName::Kill => "kill",
            CommandName::Poll => "poll",
            CommandName::Remove => "remove",
            CommandName::Set => "set",
            CommandName::Broadcast => "broadcast",
            CommandName::SetVerbosity => "setVerbosity",
            CommandName::SetGraphWindowExtent => "setGraphWindowExtent",
            CommandName::ExtTrigger => "extTrigger",
        }
    }

    /// The command called `name`, if there is one.
    pub fn from_name(name: &str) -> Option<CommandName> {
        CommandName::ALL.into_iter().find(|c| c.as_str() == name)
    }

    /// True for the commands of the `control` permission group: all but `broadcast`.
    pub fn is_control(self) -> bool {
        self != CommandName::Broadcast
    }

    /// The arguments it takes.
    fn args(self) -> &'static [Arg] {
        match self {
            CommandName::Pause
            | CommandName::Resume
            | CommandName::Reload
            | CommandName::ReleaseHoldPoint => &[],
            CommandName::Stop => STOP_ARGS,
            CommandName::Hold | CommandName::Release | CommandName::Kill | CommandName::Poll => TASKS_ONLY,
            CommandName::Trigger => TRIGGER_ARGS,
            CommandName::Remove => REMOVE_ARGS,
            CommandName::Set => SET_ARGS,
            CommandName::SetHoldPoint => SET_HOLD_POINT_ARGS,
            CommandName::SetVerbosity => SET_VERBOSITY_ARGS,
            CommandName::SetGraphWindowExtent => SET_GRAPH_WINDOW_EXTENT_ARGS,
            CommandName::Broadcast => BROADCAST_ARGS,
            CommandName::ExtTrigger => EXT_TRIGGER_ARGS,
        }
    }
}

const TASKS: Arg = Arg::required("tasks", ArgKind::Texts);
const FLOW: Arg = Arg::optional("flow", ArgKind::Texts);
const FLOW_WAIT: Arg = Arg::optional("flowWait", ArgKind::Flag);
const FLOW_DESCR: Arg = Arg::optional("flowDescr", ArgKind::Text);
const TASKS_ONLY: &[Arg] = &[TASKS];
const REMOVE_ARGS: &[Arg] = &[TASKS, FLOW];
const STOP_ARGS: &[Arg] = &[
    Arg::optional("mode", ArgKind::OneOf(&["Clean", "Kill", "Now", "NowNow"])),
    Arg::optional("cyclePoint", ArgKind::Text),
    Arg::optional("clockTime", ArgKind::Text),
    Arg::optional("task", ArgKind::Text),
    Arg::optional("flowNum", ArgKind::Count { max: u32::MAX as u64 }),
];
const TRIGGER_ARGS: &[Arg] = &[
    TASKS,
    FLOW,
    FLOW_WAIT,
    FLOW_DESCR,
    Arg::optional("onResume", ArgKind::Flag),
];
const SET_ARGS: &[Arg] = &[
    TASKS,
    Arg::optional("outputs", ArgKind::Texts),
    Arg::optional("prerequisites", ArgKind::Texts),
    FLOW,
    FLOW_WAIT,
    FLOW_DESCR,
];
const SET_VERBOSITY_ARGS: &[Arg] = &[Arg::required(
    "level",
    ArgKind::OneOf(&["DEBUG", "INFO", "NORMAL", "WARNING", "ERROR", "CRITICAL"]),
)];
const SET_HOLD_POINT_ARGS: &[Arg] = &[Arg::required("point", ArgKind::Text)];
const SET_GRAPH_WINDOW_EXTENT_ARGS: &[Arg] = &[Arg::required("nEdgeDistance", ArgKind::Count { max: 1_000 })];
const EXT_TRIGGER_ARGS: &[Arg] = &[
    Arg::required("message", ArgKind::Text),
    Arg::required("id", ArgKind::Text),
];
const BROADCAST_ARGS: &[Arg] = &[
    Arg::required("mode", ArgKind::OneOf(&["Set", "Clear", "Expire"])),
    Arg::optional("cyclePoints", ArgKind::Texts),
    Arg::optional("namespaces", ArgKind::Texts),
    Arg::optional("settings", ArgKind::Objects),
    Arg::optional("cutoff", ArgKind::Text),
];

/// What one argument holds.
#[derive(Clone, Copy, Debug)]
enum ArgKind {
    /// A string.
    Text,
    /// A non-empty list of strings.
    Texts,
    /// A boolean.
    Flag,
    /// A whole number from 0 to `max`.
    Count { max: u64 },
    /// One of these strings.
    OneOf(&'static [&'static str]),
    /// A non-empty list of objects.
    Objects,
}

/// One argument a command takes.
#[derive(Clone, Copy, Debug)]
struct Arg {
    name: &'static str,
    kind: ArgKind,
    required: bool,
}

impl Arg {
    const fn required(name: &'static str, kind: ArgKind) -> Arg {
        Arg {
            name,
            kind,
            required: true,
        }
    }

    const fn optional(name: &'static str, kind: ArgKind) -> Arg {
        Arg {
            name,
            kind,
            required: false,
        }
    }

    /// Why `value` does not fit, if it does not.
    fn misfit(&self, value: &Value) -> Option<String> {
        let list = |items: &Vec<Value>, what: &str, fits: fn(&Value) -> bool| {
            if items.is_empty() || items.len() > MAX_LIST_ITEMS {
                Some(format!("{} takes 1 to {MAX_LIST_ITEMS} {what}", self.name))
            } else if !items.iter().all(fits) {
                Some(format!("{} takes a list of {what}", self.name))
            } else {
                None
            }
        };
        match (self.kind, value) {
            (ArgKind::Text, Value::String(_)) | (ArgKind::Flag, Value::Bool(_)) => None,
            (ArgKind::Texts, Value::Array(items)) => list(items, "strings", Value::is_string),
            (ArgKind::Objects, Value::Array(items)) => list(items, "objects", Value::is_object),
            (ArgKind::Count { max }, Value::Number(n)) if n.as_u64().is_some_and(|n| n <= max) => None,
            (ArgKind::Count { max }, _) => {
                Some(format!("{} takes a whole number from 0 to {max}", self.name))
            }
            (ArgKind::OneOf(allowed), Value::String(s)) if allowed.contains(&s.as_str()) => None,
            (ArgKind::OneOf(allowed), _) => {
                Some(format!("{} takes one of {}", self.name, allowed.join(", ")))
            }
            (ArgKind::Text, _) => Some(format!("{} takes a string", self.name)),
            (ArgKind::Flag, _) => Some(format!("{} takes true or false", self.name)),
            (ArgKind::Texts, _) => Some(format!("{} takes a list of strings", self.name)),
            (ArgKind::Objects, _) => Some(format!("{} takes a list of objects", self.name)),
        }
    }
}

/// A command whose name and arguments are in the protocol's table.
#[derive(Clone, Debug, PartialEq)]
pub struct Command {
    /// What to do.
    pub name: CommandName,
    /// Its arguments, each of the type the table gives.
    pub args: Map<String, Value>,
}

impl Command {
    /// Checks a command as a client sent it: a known name, and arguments (an object,
    /// or null for none) that are exactly the command's: none missing, none unknown,
    /// each of its type. The error is the `bad_command` message.
    pub fn check(name: &str, args: &Value) -> Result<Command, String> {
        let shown: String = name.chars().take(40).collect();
        let command = CommandName::from_name(name).ok_or_else(|| format!("unknown command {shown:?}"))?;
        let args = match args {
            Value::Null => Map::new(),
            Value::Object(map) => map.clone(),
            _ => return Err(format!("{shown}: args is an object")),
        };
        let table = command.args();
        if let Some(unknown) = args.keys().find(|k| !table.iter().any(|a| a.name == k.as_str())) {
            let unknown: String = unknown.chars().take(40).collect();
            return Err(format!("{shown} takes no argument {unknown:?}"));
        }
        for arg in table {
            match args.get(arg.name) {
                None if arg.required => return Err(format!("{shown} needs {}", arg.name)),
                None => {}
                Some(value) => {
                    if let Some(why) = arg.misfit(value) {
                        return Err(format!("{shown}: {why}"));
                    }
                }
            }
        }
        Ok(Command { name: command, args })
    }

    /// A list argument's strings (empty when absent).
    pub fn texts(&self, name: &str) -> Vec<&str> {
        self.args
            .get(name)
            .and_then(Value::as_array)
            .map(|items| items.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    }
}

/// How a command ended, as the relay tells the client (docs/protocol.md, Outcomes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Accepted; the effect follows as deltas.
    Queued,
    /// The scheduler or suite said no.
    Refused,
    /// The client may not run it on this workflow; nothing was sent on.
    Forbidden,
    /// The scheduler, the suite or the client's rate is busy; try again later.
    Busy,
    /// No answer within the relay's bound.
    Timeout,
    /// The workflow is stopped, not followed or not readable by this client.
    Unavailable,
    /// Not well formed; nothing was sent on.
    BadCommand,
}

impl Outcome {
    /// Every outcome.
    pub const ALL: [Outcome; 7] = [
        Outcome::Queued,
        Outcome::Refused,
        Outcome::Forbidden,
        Outcome::Busy,
        Outcome::Timeout,
        Outcome::Unavailable,
        Outcome::BadCommand,
    ];

    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Queued => "queued",
            Outcome::Refused => "refused",
            Outcome::Forbidden => "forbidden",
            Outcome::Busy => "busy",
            Outcome::Timeout => "timeout",
            Outcome::Unavailable => "unavailable",
            Outcome::BadCommand => "bad_command",
        }
    }

    /// The outcome called `name`, if there is one.
    pub fn from_name(name: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_are_what_serde_writes_and_read_back() {
        for name in CommandName::ALL {
            assert_eq!(serde_json::to_value(name).unwrap(), name.as_str());
            assert_eq!(CommandName::from_name(name.as_str()), Some(name));
        }
        for outcome in Outcome::ALL {
            assert_eq!(serde_json::to_value(outcome).unwrap(), outcome.as_str());
            assert_eq!(Outcome::from_name(outcome.as_str()), Some(outcome));
        }
        assert!(!CommandName::Broadcast.is_control());
        assert!(CommandName::Trigger.is_control());
    }

    #[test]
    fn a_command_in_the_table_passes_with_its_arguments() {
        let hold = Command::check("hold", &json!({"tasks": ["1/foo", "2/*"]})).unwrap();
        assert_eq!(hold.name, CommandName::Hold);
        assert_eq!(hold.texts("tasks"), ["1/foo", "2/*"]);
        assert!(Command::check("pause", &Value::Null).is_ok());
        assert!(Command::check("pause", &json!({})).is_ok());
        assert!(Command::check("stop", &json!({"mode": "Now", "flowNum": 2})).is_ok());
        assert!(Command::check("set", &json!({"tasks": ["1/a"], "outputs": ["succeeded"]})).is_ok());
        assert!(Command::check("setVerbosity", &json!({"level": "DEBUG"})).is_ok());
    }

    #[test]
    fn anything_else_is_refused_with_a_reason() {
        let refused = |name: &str, args: Value| Command::check(name, &args).unwrap_err();
        assert!(refused("launch", json!({})).contains("unknown command"));
        assert!(refused("message", json!({})).contains("unknown command"));
        assert!(refused("hold", json!({})).contains("needs tasks"));
        assert!(refused("hold", json!({"tasks": []})).contains("1 to 1000"));
        assert!(refused("hold", json!({"tasks": "1/foo"})).contains("list of strings"));
        assert!(refused("hold", json!({"tasks": [1]})).contains("list of strings"));
        assert!(refused("hold", json!({"tasks": ["1/a"], "force": true})).contains("no argument"));
        assert!(refused("pause", json!(["x"])).contains("object"));
        assert!(refused("stop", json!({"mode": "Later"})).contains("one of"));
        assert!(refused("stop", json!({"flowNum": -1})).contains("whole number"));
        assert!(refused("setGraphWindowExtent", json!({"nEdgeDistance": 5000})).contains("0 to 1000"));
        let many: Vec<String> = (0..=MAX_LIST_ITEMS).map(|i| format!("1/t{i}")).collect();
        assert!(refused("kill", json!({ "tasks": many })).contains("1 to 1000"));
    }

    #[test]
    fn text_that_looks_like_graphql_is_only_text() {
        // Arguments are values, never spliced into a query: a string is a string.
        let sneaky = "1/a\"]) { result } mutation { stop(workflows: [\"*\"]";
        let trigger = Command::check("trigger", &json!({"tasks": [sneaky]})).unwrap();
        assert_eq!(trigger.texts("tasks"), [sneaky]);
    }
}
