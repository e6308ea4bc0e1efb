//! The few fields of Cylc's protobuf `AllDeltas` (cylc-flow 8.5,
//! `data_messages.proto`) the floor reads: each per-type delta's `time`, and the id
//! and state of added and updated task proxies and jobs. Protobuf skips the rest.

/// A scheduler's publish on topic `all`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AllDeltas {
    /// `JDeltas`.
    #[prost(message, optional, tag = "3")]
    pub jobs: Option<ElementDeltas>,
    /// `TPDeltas`.
    #[prost(message, optional, tag = "5")]
    pub task_proxies: Option<ElementDeltas>,
    /// `WDeltas`.
    #[prost(message, optional, tag = "7")]
    pub workflow: Option<WorkflowDeltas>,
}

/// `TPDeltas` and `JDeltas` share this layout.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ElementDeltas {
    /// Unix seconds at which the scheduler made the delta.
    #[prost(double, optional, tag = "1")]
    pub time: Option<f64>,
    /// New elements.
    #[prost(message, repeated, tag = "3")]
    pub added: Vec<Element>,
    /// Changed elements (only changed fields set).
    #[prost(message, repeated, tag = "4")]
    pub updated: Vec<Element>,
}

/// `PbTaskProxy` and `PbJob` both have `id` = 2 and `state` = 4.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Element {
    /// Full Cylc id.
    #[prost(string, optional, tag = "2")]
    pub id: Option<String>,
    /// State, when set.
    #[prost(string, optional, tag = "4")]
    pub state: Option<String>,
}

/// `WDeltas`: only its time.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WorkflowDeltas {
    /// Unix seconds.
    #[prost(double, optional, tag = "1")]
    pub time: Option<f64>,
}

impl AllDeltas {
    /// The latest `time` of the deltas present, in Unix milliseconds.
    pub fn time_ms(&self) -> Option<f64> {
        [
            self.jobs.as_ref().and_then(|d| d.time),
            self.task_proxies.as_ref().and_then(|d| d.time),
            self.workflow.as_ref().and_then(|d| d.time),
        ]
        .into_iter()
        .flatten()
        .reduce(f64::max)
        .map(|s| s * 1000.0)
    }

    /// `(full id, state)` of every task proxy and job change that sets a state.
    pub fn changes(&self) -> impl Iterator<Item = (&str, &str)> {
        [&self.task_proxies, &self.jobs]
            .into_iter()
            .flatten()
            .flat_map(|d| d.added.iter().chain(&d.updated))
            .filter_map(|e| Some((e.id.as_deref()?, e.state.as_deref().filter(|s| !s.is_empty())?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn reads_what_it_wrote() {
        let tp = |id: &str, state: Option<&str>| Element {
            id: Some(id.into()),
            state: state.map(Into::into),
        };
        let all = AllDeltas {
            jobs: None,
            task_proxies: Some(ElementDeltas {
                time: Some(1_700_000_000.5),
                added: vec![tp("~u/w//1/a", Some("waiting"))],
                updated: vec![tp("~u/w//1/b", None), tp("~u/w//1/c", Some("running"))],
            }),
            workflow: Some(WorkflowDeltas {
                time: Some(1_699_999_999.0),
            }),
        };
        let back = AllDeltas::decode(all.encode_to_vec().as_slice()).expect("decodes");
        assert_eq!(back.time_ms(), Some(1_700_000_000_500.0));
        let changes: Vec<_> = back.changes().collect();
        assert_eq!(changes, vec![("~u/w//1/a", "waiting"), ("~u/w//1/c", "running")]);
        assert!(AllDeltas::decode(&b"\xff\xff"[..]).is_err());
    }
}
