//! A running workflow's contact file, `<run dir>/.service/contact`.
//!
//! The scheduler writes it when it starts and removes it when it stops, so its
//! presence means "running". It is `KEY=VALUE` lines; the link needs the host, the
//! REP port (`CYLC_WORKFLOW_PORT`) and the PUB port (`CYLC_WORKFLOW_PUBLISH_PORT`),
//! and the run's UUID tells a restarted workflow from the run before it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The directory in a run directory that holds the contact file and keys.
pub const SERVICE_DIR: &str = ".service";
/// The contact file's name in the service directory.
pub const CONTACT_FILE: &str = "contact";
/// Contact files larger than this are not contact files (Cylc's are ~600 bytes).
const MAX_CONTACT_BYTES: u64 = 64 * 1024;

/// Why a contact file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ContactError {
    /// The file could not be read (a missing file means the workflow is not running).
    #[error("contact file {path}: {source}")]
    Read {
        /// The contact file.
        path: PathBuf,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// The file is not a usable contact file.
    #[error("contact file {path}: {why}")]
    Bad {
        /// The contact file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
}

/// What a running scheduler says about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contact {
    /// `CYLC_WORKFLOW_HOST`: where the scheduler runs.
    pub host: String,
    /// `CYLC_WORKFLOW_PORT`: its REP socket.
    pub port: u16,
    /// `CYLC_WORKFLOW_PUBLISH_PORT`: its PUB socket.
    pub publish_port: u16,
    /// `CYLC_WORKFLOW_UUID`: this run of the workflow (empty if not given).
    pub uuid: String,
    /// `CYLC_VERSION` (empty if not given).
    pub version: String,
    /// Every field, as written.
    pub fields: BTreeMap<String, String>,
}

impl Contact {
    /// Parses contact text. Lines without `=` are ignored; Cylc 7's `SUITE` names
    /// are read as Cylc 8's `WORKFLOW` ones, as Cylc itself does.
    pub fn parse(text: &str) -> Result<Contact, String> {
        let mut fields = BTreeMap::new();
        for line in text.lines() {
            if let Some((key, value)) = line.split_once('=') {
                fields.insert(key.trim().replace("SUITE", "WORKFLOW"), value.trim().to_owned());
            }
        }
        let field = |name: &str| fields.get(name).cloned().unwrap_or_default();
        let host = field("CYLC_WORKFLOW_HOST");
        if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '/') {
            return Err(format!("CYLC_WORKFLOW_HOST {host:?} is not a host name"));
        }
        let port_of = |name: &str| -> Result<u16, String> {
            match fields.get(name) {
                None => Err(format!("no {name} (a Cylc 7 or older workflow?)")),
                Some(text) => match text.parse::<u16>() {
                    Ok(port) if port != 0 => Ok(port),
                    _ => Err(format!("{name} {text:?} is not a port")),
                },
            }
        };
        Ok(Contact {
            port: port_of("CYLC_WORKFLOW_PORT")?,
            publish_port: port_of("CYLC_WORKFLOW_PUBLISH_PORT")?,
            uuid: field("CYLC_WORKFLOW_UUID"),
            version: field("CYLC_VERSION"),
            host,
            fields,
        })
    }

    /// Reads the contact file of the run directory `run_dir`.
    pub fn load(run_dir: &Path) -> Result<Contact, ContactError> {
        let path = run_dir.join(SERVICE_DIR).join(CONTACT_FILE);
        let read = |source| ContactError::Read {
            path: path.clone(),
            source,
        };
        let size = std::fs::metadata(&path).map_err(read)?.len();
        if size > MAX_CONTACT_BYTES {
            return Err(ContactError::Bad {
                path,
                why: format!("{size} bytes is too big for a contact file"),
            });
        }
        let text = std::fs::read_to_string(&path).map_err(read)?;
        Contact::parse(&text).map_err(|why| ContactError::Bad { path, why })
    }

    /// The scheduler's REP endpoint, for requests.
    pub fn req_endpoint(&self) -> String {
        format!("tcp://{}:{}", self.host, self.port)
    }

    /// The scheduler's PUB endpoint, for deltas.
    pub fn pub_endpoint(&self) -> String {
        format!("tcp://{}:{}", self.host, self.publish_port)
    }

    /// Whether `other` is the same run at the same address (a restart, or a
    /// scheduler that moved, is not).
    pub fn same_run(&self, other: &Contact) -> bool {
        self.uuid == other.uuid
            && self.host == other.host
            && self.port == other.port
            && self.publish_port == other.publish_port
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CYLC_8_5: &str = "CYLC_API=5\nCYLC_VERSION=8.5.4\n\
        CYLC_WORKFLOW_COMMAND=cylc play --mode=simulation demo\n\
        CYLC_WORKFLOW_HOST=localhost\nCYLC_WORKFLOW_ID=demo\nCYLC_WORKFLOW_OWNER=someone\n\
        CYLC_WORKFLOW_PID=13305\nCYLC_WORKFLOW_PORT=43081\nCYLC_WORKFLOW_PUBLISH_PORT=43071\n\
        CYLC_WORKFLOW_UUID=58d98d2d-e2eb-42ad-a388-5e5383bc3ecf\n\
        SCHEDULER_SSH_COMMAND=ssh -oBatchMode=yes -oConnectTimeout=10\n";

    #[test]
    fn reads_what_cylc_8_writes() {
        let contact = Contact::parse(CYLC_8_5).unwrap();
        assert_eq!(contact.req_endpoint(), "tcp://localhost:43081");
        assert_eq!(contact.pub_endpoint(), "tcp://localhost:43071");
        assert_eq!(contact.uuid, "58d98d2d-e2eb-42ad-a388-5e5383bc3ecf");
        assert_eq!(contact.version, "8.5.4");
        assert_eq!(
            contact.fields["SCHEDULER_SSH_COMMAND"],
            "ssh -oBatchMode=yes -oConnectTimeout=10"
        );
    }

    #[test]
    fn bad_contact_files_say_what_is_wrong() {
        let without = |name: &str| {
            CYLC_8_5
                .lines()
                .filter(|l| !l.starts_with(&format!("{name}=")))
                .collect::<Vec<_>>()
                .join("\n")
        };
        let err = Contact::parse(&without("CYLC_WORKFLOW_PUBLISH_PORT")).unwrap_err();
        assert!(err.contains("no CYLC_WORKFLOW_PUBLISH_PORT"), "{err}");
        let err = Contact::parse(&without("CYLC_WORKFLOW_HOST")).unwrap_err();
        assert!(err.contains("not a host name"), "{err}");
        let err = Contact::parse(&CYLC_8_5.replace("=43081", "=99999")).unwrap_err();
        assert!(
            err.contains("CYLC_WORKFLOW_PORT \"99999\" is not a port"),
            "{err}"
        );
        assert!(Contact::parse("garbage\n\0\u{fffd}").is_err());
    }

    #[test]
    fn a_restart_is_another_run() {
        let first = Contact::parse(CYLC_8_5).unwrap();
        let again = Contact::parse(&CYLC_8_5.replace("58d98d2d", "6e0a1b2c")).unwrap();
        assert!(first.same_run(&first.clone()));
        assert!(!first.same_run(&again));
    }
}
