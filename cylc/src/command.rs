//! Commands to a Cylc scheduler (docs/protocol.md, Commands): a checked
//! [`Command`] becomes one `graphql` request on the scheduler's REQ socket, with the
//! mutation's text taken from a fixed table and every argument passed as a GraphQL
//! variable, never spliced into the text; the scheduler's reply becomes one outcome.
//!
//! The scheduler does no authorization of its own (`auth_user` only goes into its
//! log): whoever sends this must have checked the user's permissions first.

use clonewire_core::protocol::command::{Command, CommandName, Outcome};
use serde_json::{json, Map, Value};

/// One mutation: its text, and for each of our argument names the variable it goes in.
struct Mutation {
    text: &'static str,
    variables: &'static [(&'static str, &'static str)],
}

/// The mutation text and variables of each command, as Cylc's own CLI writes them.
fn mutation(name: CommandName) -> Mutation {
    const TASKS: (&str, &str) = ("tasks", "tasks");
    const FLOW: [(&str, &str); 3] = [
        ("flow", "flow"),
        ("flowWait", "flowWait"),
        ("flowDescr", "flowDescr"),
    ];
    let m = |text, variables| Mutation { text, variables };
    match name {
        CommandName::Pause => m(
            "mutation ($wFlows: [WorkflowID]!) { pause (workflows: $wFlows) { result } }",
            &[],
        ),
        CommandName::Resume => m(
            "mutation ($wFlows: [WorkflowID]!) { resume (workflows: $wFlows) { result } }",
            &[],
        ),
        CommandName::Reload => m(
            "mutation ($wFlows: [WorkflowID]!) { reload (workflows: $wFlows) { result } }",
            &[],
        ),
        CommandName::ReleaseHoldPoint => m(
            "mutation ($wFlows: [WorkflowID]!) { releaseHoldPoint (workflows: $wFlows) { result } }",
            &[],
        ),
        CommandName::Stop => m(
            "mutation ($wFlows: [WorkflowID]!, $stopMode: WorkflowStopMode, $cyclePoint: CyclePoint, \
             $clockTime: TimePoint, $task: TaskID, $flowNum: Int) { stop (workflows: $wFlows, \
             mode: $stopMode, cyclePoint: $cyclePoint, clockTime: $clockTime, task: $task, \
             flowNum: $flowNum) { result } }",
            &[
                ("mode", "stopMode"),
                ("cyclePoint", "cyclePoint"),
                ("clockTime", "clockTime"),
                ("task", "task"),
                ("flowNum", "flowNum"),
            ],
        ),
        CommandName::Hold => m(
            "mutation ($wFlows: [WorkflowID]!, $tasks: [NamespaceIDGlob]!) { hold (workflows: $wFlows, \
             tasks: $tasks) { result } }",
            &[TASKS],
        ),
        CommandName::Release => m(
            "mutation ($wFlows: [WorkflowID]!, $tasks: [NamespaceIDGlob]!) { release (workflows: $wFlows, \
             tasks: $tasks) { result } }",
            &[TASKS],
        ),
        CommandName::Kill => m(
            "mutation ($wFlows: [WorkflowID]!, $tasks: [NamespaceIDGlob]!) { kill (workflows: $wFlows, \
             tasks: $tasks) { result } }",
            &[TASKS],
        ),
        CommandName::Poll => m(
            "mutation ($wFlows: [WorkflowID]!, $tasks: [NamespaceIDGlob]!) { poll (workflows: $wFlows, \
             tasks: $tasks) { result } }",
            &[TASKS],
        ),
        CommandName::SetHoldPoint => m(
            "mutation ($wFlows: [WorkflowID]!, $point: CyclePoint!) { setHoldPoint (workflows: $wFlows, \
             point: $point) { result } }",
            &[("point", "point")],
        ),
        CommandName::Trigger => m(
            "mutation ($wFlows: [WorkflowID]!, $tasks: [NamespaceIDGlob]!, $flow: [Flow!], \
             $flowWait: Boolean, $flowDescr: String, $onResume: Boolean) { trigger (workflows: $wFlows, \
             tasks: $tasks, flow: $flow, flowWait: $flowWait, flowDescr: $flowDescr, \
             onResume: $onResume) { result } }",
            &[TASKS, FLOW[0], FLOW[1], FLOW[2], ("onResume", "onResume")],
        ),
        CommandName::Remove => m(
            "mutation ($wFlows: [WorkflowID]!, $tasks: [NamespaceIDGlob]!, $flow: [Flow!]) { remove \
             (workflows: $wFlows, tasks: $tasks, flow: $flow) { result } }",
            &[TASKS, FLOW[0]],
        ),
        CommandName::Set => m(
            "mutation ($wFlows: [WorkflowID]!, $tasks: [NamespaceIDGlob]!, $prerequisites: \
             [PrerequisiteString], $outputs: [OutputLabel], $flow: [Flow!], $flowWait: Boolean, \
             $flowDescr: String) { set (workflows: $wFlows, tasks: $tasks, prerequisites: \
             $prerequisites, outputs: $outputs, flow: $flow, flowWait: $flowWait, flowDescr: \
             $flowDescr) { result } }",
            &[
                TASKS,
                ("prerequisites", "prerequisites"),
                ("outputs", "outputs"),
                FLOW[0],
                FLOW[1],
                FLOW[2],
            ],
        ),
        CommandName::Broadcast => m(
            "mutation ($wFlows: [WorkflowID]!, $bMode: BroadcastMode!, $cPoints: [BroadcastCyclePoint], \
             $nSpaces: [NamespaceName], $bSettings: [BroadcastSetting], $bCutoff: CyclePoint) { \
             broadcast (workflows: $wFlows, mode: $bMode, cyclePoints: $cPoints, namespaces: \
             $nSpaces, settings: $bSettings, cutoff: $bCutoff) { result } }",
            &[
                ("mode", "bMode"),
                ("cyclePoints", "cPoints"),
                ("namespaces", "nSpaces"),
                ("settings", "bSettings"),
                ("cutoff", "bCutoff"),
            ],
        ),
        CommandName::SetVerbosity => m(
            "mutation ($wFlows: [WorkflowID]!, $level: LogLevels!) { setVerbosity (workflows: $wFlows, \
             level: $level) { result } }",
            &[("level", "level")],
        ),
        CommandName::SetGraphWindowExtent => m(
            "mutation ($wFlows: [WorkflowID]!, $nEdgeDistance: Int!) { setGraphWindowExtent \
             (workflows: $wFlows, nEdgeDistance: $nEdgeDistance) { result } }",
            &[("nEdgeDistance", "nEdgeDistance")],
        ),
        CommandName::ExtTrigger => m(
            "mutation ($wFlows: [WorkflowID]!, $eventMsg: String!, $eventId: String!) { extTrigger \
             (workflows: $wFlows, message: $eventMsg, id: $eventId) { result } }",
            &[("message", "eventMsg"), ("id", "eventId")],
        ),
    }
}

/// The request frame that runs `command` on workflow `workflow` (its Cylc id, e.g.
/// `~alice/flow`), naming `user` as who asked and `host` as where from.
pub fn request(command: &Command, workflow: &str, user: &str, host: &str) -> Vec<u8> {
    let mutation = mutation(command.name);
    let mut variables = Map::new();
    variables.insert("wFlows".into(), json!([workflow]));
    for (ours, theirs) in mutation.variables {
        if let Some(value) = command.args.get(*ours) {
            variables.insert((*theirs).to_owned(), value.clone());
        }
    }
    json!({
        "command": "graphql",
        "args": {"request_string": mutation.text, "variables": variables},
        "meta": {"prog": "clonewire", "host": host, "comms_method": "zmq", "auth_user": user},
    })
    .to_string()
    .into_bytes()
}

/// Longest scheduler message passed on to a client, in characters.
const MAX_MESSAGE_CHARS: usize = 2_000;

/// How the scheduler answered `name`: `queued` with its message when it accepted the
/// command, `refused` with its message when it did not (a GraphQL error, or
/// `[false, why]`), for every shape Cylc answers in.
pub fn outcome(name: CommandName, reply: &[u8]) -> (Outcome, String) {
    let cut = |text: &str| text.chars().take(MAX_MESSAGE_CHARS).collect::<String>();
    let Ok(reply) = serde_json::from_slice::<Value>(reply) else {
        return (Outcome::Refused, "the scheduler's answer is not JSON".into());
    };
    if let Some(error) = reply.get("error") {
        let message = error.get("message").and_then(Value::as_str).unwrap_or("an error");
        return (Outcome::Refused, cut(message));
    }
    if let Some(errors) = reply.get("errors").and_then(Value::as_array) {
        let messages: Vec<&str> = errors
            .iter()
            .filter_map(|e| e.get("message").and_then(Value::as_str))
            .collect();
        return (Outcome::Refused, cut(&messages.join("; ")));
    }
    let result = &reply["data"][name.as_str()]["result"];
    // `[{"id": workflow, "response": [ok, message]}]`, one entry per workflow.
    let responses: Vec<(bool, String)> = result
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            let response = entry.get("response")?.as_array()?;
            let ok = response.first()?.as_bool()?;
            let message = match response.get(1) {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => String::new(),
            };
            Some((ok, message))
        })
        .collect();
    match responses.as_slice() {
        [] if result.is_null() => (Outcome::Refused, "the scheduler gave no result".into()),
        // Another shape (a broadcast's report): accepted.
        [] => (Outcome::Queued, cut(&result.to_string())),
        all => {
            let ok = all.iter().all(|(ok, _)| *ok);
            let message = all.iter().map(|(_, m)| m.as_str()).collect::<Vec<_>>().join("; ");
            (if ok { Outcome::Queued } else { Outcome::Refused }, cut(&message))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request_json(command: &str, args: Value) -> Value {
        let command = Command::check(command, &args).unwrap();
        serde_json::from_slice(&request(&command, "~alice/flow", "bob", "here")).unwrap()
    }

    #[test]
    fn arguments_travel_as_variables_of_a_fixed_text() {
        let sneaky = "1/a\"]) { result } mutation { stop(workflows: [\"*\"]) { result";
        let r = request_json("hold", json!({"tasks": [sneaky]}));
        assert_eq!(r["command"], "graphql");
        assert_eq!(r["meta"]["auth_user"], "bob");
        let text = r["args"]["request_string"].as_str().unwrap();
        assert!(!text.contains(sneaky) && !text.contains("alice"), "{text}");
        assert_eq!(
            r["args"]["variables"],
            json!({"wFlows": ["~alice/flow"], "tasks": [sneaky]})
        );
        // Every command's text is the same whatever its arguments.
        let again = request_json("hold", json!({"tasks": ["2/b"]}));
        assert_eq!(again["args"]["request_string"], r["args"]["request_string"]);
    }

    #[test]
    fn every_command_has_a_mutation_naming_itself_and_declaring_its_variables() {
        for name in CommandName::ALL {
            let m = mutation(name);
            assert!(m.text.contains(&format!("{{ {} (", name.as_str())), "{}", m.text);
            assert!(m.text.contains("$wFlows: [WorkflowID]!"));
            for (_, variable) in m.variables {
                assert!(
                    m.text.contains(&format!("${variable}:")),
                    "{}: ${variable}",
                    name.as_str()
                );
            }
        }
        let r = request_json("stop", json!({"mode": "Now"}));
        assert_eq!(r["args"]["variables"]["stopMode"], "Now");
        let r = request_json(
            "trigger",
            json!({"tasks": ["1/a"], "flow": ["new"], "onResume": true}),
        );
        assert_eq!(r["args"]["variables"]["flow"], json!(["new"]));
        assert_eq!(r["args"]["variables"]["onResume"], true);
    }

    #[test]
    fn replies_become_one_outcome() {
        let hold = CommandName::Hold;
        let queued =
            br#"{"data": {"hold": {"result": [{"id": "~a/f", "response": [true, "Command queued"]}]}}}"#;
        assert_eq!(outcome(hold, queued), (Outcome::Queued, "Command queued".into()));
        let refused =
            br#"{"data": {"hold": {"result": [{"id": "~a/f", "response": [false, "No matching tasks"]}]}}}"#;
        assert_eq!(
            outcome(hold, refused),
            (Outcome::Refused, "No matching tasks".into())
        );
        let error = br#"{"error": {"message": "Variable '$tasks' got invalid value"}}"#;
        assert_eq!(outcome(hold, error).0, Outcome::Refused);
        let errors = br#"{"data": null, "errors": [{"message": "Cannot query field"}]}"#;
        assert_eq!(
            outcome(hold, errors),
            (Outcome::Refused, "Cannot query field".into())
        );
        assert_eq!(outcome(hold, b"not json").0, Outcome::Refused);
        let broadcast = br#"{"data": {"broadcast": {"result": {"modified": []}}}}"#;
        assert_eq!(outcome(CommandName::Broadcast, broadcast).0, Outcome::Queued);
        // The message is bounded however long the scheduler's is.
        let long = format!(r#"{{"error": {{"message": "{}"}}}}"#, "x".repeat(10_000));
        assert_eq!(outcome(hold, long.as_bytes()).1.len(), MAX_MESSAGE_CHARS);
    }
}
