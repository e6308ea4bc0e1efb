//! A suite's contact file: how a suite announces itself in a directory that relays
//! watch (`clonewire-sim --contact-dir DIR`, [`PublisherConfig::contact_dir`],
//! `clonewire-relay --discover DIR`).
//!
//! The file is `DIR/NAME.json` (characters of the name other than letters, digits,
//! `-`, `_` and `.` written as `_`), one JSON object (docs/discovery.md):
//!
//! ```json
//! {"version": 1, "name": "demo", "pub": "tcp://127.0.0.1:5560",
//!  "rep": "tcp://127.0.0.1:5561", "curve_public_key": "…", "host": "node1",
//!  "pid": 4242, "started": 1764322221000}
//! ```
//!
//! `curve_public_key` is there only for a CURVE suite. It is written atomically (a
//! temporary file renamed into place) once the sockets are bound, and removed when
//! the suite shuts down in order. A file left by a process that died is *stale*:
//! `host` and `pid` let a reader on that host see it (see
//! [`Process::is_gone`](clonewire_zmq::discovery::Process::is_gone)), and a new suite of
//! the same name replaces it.
//!
//! [`PublisherConfig::contact_dir`]: crate::PublisherConfig::contact_dir

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Error;
use clonewire_zmq::discovery::{Announcement, Finder, Found, Process, Scan};
use clonewire_zmq::sockets::CurvePublicKey;
use clonewire_zmq::unix_ms;

/// The format's version; files of another version are not read.
pub const VERSION: u32 = 1;
/// Files larger than this are not contact files (ours are ~250 bytes).
const MAX_CONTACT_BYTES: u64 = 64 * 1024;
/// Directory entries looked at per scan at most: a runaway directory costs a bounded
/// look.
const MAX_ENTRIES: usize = 10_000;

/// What a suite's contact file says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuiteContact {
    /// The format's version ([`VERSION`]).
    pub version: u32,
    /// The suite's name: the workflow id clients see.
    pub name: String,
    /// The PUB endpoint, as followers connect to it.
    #[serde(rename = "pub")]
    pub pub_endpoint: String,
    /// The REP endpoint.
    #[serde(rename = "rep")]
    pub rep_endpoint: String,
    /// The suite's CURVE public key (Z85), for a CURVE suite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub curve_public_key: Option<String>,
    /// The host the suite runs on.
    pub host: String,
    /// The suite's process id.
    pub pid: u32,
    /// When the suite started (Unix ms).
    pub started: u64,
}

impl SuiteContact {
    /// This process's contact for a suite bound at `pub_endpoint` and `rep_endpoint`
    /// (as bound: a wildcard address, `0.0.0.0` or `[::]`, is written as this host's
    /// name, which followers elsewhere can reach).
    pub fn for_this_process(
        name: &str,
        pub_endpoint: &str,
        rep_endpoint: &str,
        curve_public_key: Option<&CurvePublicKey>,
    ) -> SuiteContact {
        let me = Process::this();
        let reachable = |endpoint: &str| {
            ["tcp://0.0.0.0:", "tcp://*:", "tcp://[::]:"]
                .iter()
                .find_map(|wild| endpoint.strip_prefix(wild))
                .map_or_else(|| endpoint.to_owned(), |port| format!("tcp://{}:{port}", me.host))
        };
        SuiteContact {
            version: VERSION,
            name: name.to_owned(),
            pub_endpoint: reachable(pub_endpoint),
            rep_endpoint: reachable(rep_endpoint),
            curve_public_key: curve_public_key.map(|k| k.0.clone()),
            host: me.host,
            pid: me.pid,
            started: unix_ms() as u64,
        }
    }

    /// Parses and checks a contact file's text; the error says what is wrong.
    pub fn parse(text: &str) -> Result<SuiteContact, String> {
        let contact: SuiteContact =
            serde_json::from_str(text).map_err(|e| format!("not a clonewire contact file: {e}"))?;
        contact.check()?;
        Ok(contact)
    }

    fn check(&self) -> Result<(), String> {
        if self.version != VERSION {
            return Err(format!(
                "version {} (this build reads version {VERSION})",
                self.version
            ));
        }
        if self.name.is_empty() || self.name.chars().count() > 200 || self.name.chars().any(char::is_control)
        {
            return Err(format!(
                "name {:?} must be 1 to 200 printable characters",
                self.name
            ));
        }
        for (field, endpoint) in [("pub", &self.pub_endpoint), ("rep", &self.rep_endpoint)] {
            let known = ["tcp://", "ipc://"].iter().any(|s| endpoint.starts_with(s));
            if !known || endpoint.len() < 8 || endpoint.len() > 1000 {
                return Err(format!(
                    "{field} {endpoint:?} must look like tcp://HOST:PORT or ipc://PATH"
                ));
            }
        }
        if let Some(key) = &self.curve_public_key {
            CurvePublicKey::parse(key).map_err(|why| format!("curve_public_key: {why}"))?;
        }
        if self.host.is_empty()
            || self.host.len() > 255
            || self.host.contains(|c: char| c.is_whitespace() || c == '/')
        {
            return Err(format!("host {:?} is not a host name", self.host));
        }
        if self.pid == 0 {
            return Err("pid must be a process id, not 0".into());
        }
        Ok(())
    }

    /// Reads and checks the contact file at `path`.
    pub fn load(path: &Path) -> Result<SuiteContact, String> {
        let size = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
        if size > MAX_CONTACT_BYTES {
            return Err(format!("{size} bytes is too big for a contact file"));
        }
        let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
        SuiteContact::parse(&text)
    }

    /// The contact file's name for a suite called `name`.
    pub fn file_name(name: &str) -> String {
        let mut safe: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        if safe.starts_with('.') {
            safe.replace_range(0..1, "_");
        }
        format!("{safe}.json")
    }
}

impl Announcement for SuiteContact {
    fn same_run(&self, other: &SuiteContact) -> bool {
        self == other
    }

    fn process(&self) -> Option<Process> {
        Some(Process {
            host: self.host.clone(),
            pid: self.pid,
        })
    }
}

/// A suite's contact file, written while the suite runs: dropping it (or
/// [`ContactFile::remove`]) removes the file, if it is still this suite's.
#[derive(Debug)]
pub struct ContactFile {
    path: PathBuf,
    contact: SuiteContact,
}

impl ContactFile {
    /// Writes `contact` into `dir` (made if missing), atomically. A file of the same
    /// name left by a process that is gone is replaced; one whose process may still
    /// run is an error (two suites cannot share a name in one directory).
    pub fn write(dir: &Path, contact: SuiteContact) -> Result<ContactFile, Error> {
        contact
            .check()
            .map_err(|why| Error::config(format!("contact file: {why}")))?;
        let bad = |what: &str, e: std::io::Error| {
            Error::config(format!("contact directory {}: {what}: {e}", dir.display()))
        };
        std::fs::create_dir_all(dir).map_err(|e| bad("cannot make it", e))?;
        let path = dir.join(SuiteContact::file_name(&contact.name));
        if let Ok(old) = SuiteContact::load(&path) {
            let process = old.process().unwrap_or_else(Process::this);
            if process.is_gone() {
                tracing::info!(path = %path.display(), pid = old.pid, "replacing a stale contact file");
            } else {
                return Err(Error::config(format!(
                    "{} already announces suite {:?} (pid {} on {}); stop that suite, or remove the file if it is gone",
                    path.display(),
                    old.name,
                    old.pid,
                    old.host
                )));
            }
        }
        let text = serde_json::to_string_pretty(&contact).map_err(|e| Error::config(e.to_string()))?;
        let temp = dir.join(format!(
            ".{}.{}.tmp",
            SuiteContact::file_name(&contact.name),
            contact.pid
        ));
        let written = std::fs::write(&temp, format!("{text}\n"))
            .and_then(|()| std::fs::File::open(&temp)?.sync_all())
            .and_then(|()| std::fs::rename(&temp, &path));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&temp);
            return Err(bad("cannot write the contact file", e));
        }
        tracing::info!(path = %path.display(), "contact file written");
        Ok(ContactFile { path, contact })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What it says.
    pub fn contact(&self) -> &SuiteContact {
        &self.contact
    }

    /// Removes the file now (as dropping it does).
    pub fn remove(self) {
        drop(self);
    }

    fn remove_if_ours(&self) {
        // A successor may have replaced it (after taking this process for gone).
        if SuiteContact::load(&self.path).is_ok_and(|c| c != self.contact) {
            return;
        }
        match std::fs::remove_file(&self.path) {
            Ok(()) => tracing::info!(path = %self.path.display(), "contact file removed"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot remove the contact file")
            }
        }
    }
}

impl Drop for ContactFile {
    fn drop(&mut self) {
        self.remove_if_ours();
    }
}

/// The contact files in one directory (`*.json`, not those starting with `.`,
/// which are files being written): the [`Finder`] for `--discover DIR`.
#[derive(Clone, Debug)]
pub struct ContactDir {
    dir: PathBuf,
}

impl ContactDir {
    /// Looks in `dir` (which need not exist yet).
    pub fn new(dir: impl Into<PathBuf>) -> ContactDir {
        ContactDir { dir: dir.into() }
    }
}

impl Finder for ContactDir {
    type Contact = SuiteContact;

    fn root(&self) -> &Path {
        &self.dir
    }

    fn find(&self) -> Scan<SuiteContact> {
        let mut scan = Scan::default();
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return scan;
        };
        let mut paths = BTreeMap::new();
        for entry in entries.flatten().take(MAX_ENTRIES) {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with('.') || !name.ends_with(".json") {
                continue;
            }
            paths.insert(entry.path(), ());
        }
        for path in paths.into_keys() {
            match SuiteContact::load(&path) {
                Ok(contact) => {
                    let found = Found {
                        id: contact.name.clone(),
                        path: path.clone(),
                        contact,
                    };
                    scan.found.insert(path, found);
                }
                // Gone between listing and reading: as if never listed.
                Err(_) if !path.exists() => {}
                Err(why) => {
                    scan.unreadable.insert(path, why);
                }
            }
        }
        scan
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clonewire_zmq::discovery::{host_name, Change, Discovery};

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("clonewire-contact-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn contact(name: &str) -> SuiteContact {
        SuiteContact::for_this_process(name, "tcp://127.0.0.1:5560", "tcp://0.0.0.0:5561", None)
    }

    #[test]
    fn written_atomically_read_back_and_removed_on_drop() {
        let dir = temp_dir("write");
        let file = ContactFile::write(&dir, contact("ops/main")).unwrap();
        assert_eq!(file.path(), dir.join("ops_main.json"));
        let back = SuiteContact::load(file.path()).unwrap();
        assert_eq!(&back, file.contact());
        assert_eq!(back.name, "ops/main");
        assert_eq!(back.pid, std::process::id());
        assert_eq!(back.rep_endpoint, format!("tcp://{}:5561", host_name()));
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names.len(), 1, "no temporary file left: {names:?}");
        let path = file.path().to_owned();
        file.remove();
        assert!(!path.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_live_namesake_is_refused_and_a_stale_one_replaced() {
        let dir = temp_dir("namesake");
        let first = ContactFile::write(&dir, contact("demo")).unwrap();
        let err = ContactFile::write(&dir, contact("demo")).unwrap_err().to_string();
        assert!(err.contains("already announces suite \"demo\""), "{err}");
        // A file left by a process that is gone.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        child.wait().unwrap();
        let stale = SuiteContact {
            pid: child.id(),
            ..first.contact().clone()
        };
        std::mem::forget(first);
        std::fs::write(dir.join("demo.json"), serde_json::to_string(&stale).unwrap()).unwrap();
        let second = ContactFile::write(&dir, contact("demo")).unwrap();
        assert_eq!(SuiteContact::load(second.path()).unwrap().pid, std::process::id());
        drop(second);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        let good = serde_json::to_value(contact("demo")).unwrap();
        let with = |field: &str, value: serde_json::Value| {
            let mut v = good.clone();
            v[field] = value;
            SuiteContact::parse(&v.to_string()).unwrap_err()
        };
        assert!(SuiteContact::parse("{\"name\": ")
            .unwrap_err()
            .contains("not a clonewire contact file"));
        assert!(with("version", 2.into()).contains("version 2"));
        assert!(with("name", "".into()).contains("name"));
        assert!(with("pub", "http://x:1".into()).contains("pub \"http://x:1\""));
        assert!(with("curve_public_key", "short".into()).contains("curve_public_key"));
        assert!(with("host", "a b".into()).contains("not a host name"));
        assert!(with("pid", 0.into()).contains("pid"));
        assert!(with("pid", (-1).into()).contains("not a clonewire contact file"));
    }

    #[test]
    fn a_directory_is_scanned_for_contact_files() {
        let dir = temp_dir("scan");
        let mut discovery = Discovery::new(ContactDir::new(&dir));
        assert!(discovery.scan().is_empty(), "a missing directory is empty");
        let file = ContactFile::write(&dir, contact("a")).unwrap();
        std::fs::write(dir.join(".b.json.1.tmp"), "{").unwrap();
        std::fs::write(dir.join("notes.txt"), "not a contact file").unwrap();
        let changes = discovery.scan();
        let [Change::Added(found)] = &changes[..] else {
            panic!("{changes:?}")
        };
        assert_eq!((found.id.as_str(), found.path.as_path()), ("a", file.path()));
        std::fs::write(dir.join("c.json"), "[]").unwrap();
        assert!(discovery.scan().is_empty());
        let changes = discovery.scan();
        assert!(
            matches!(&changes[..], [Change::Unreadable { why, .. }] if why.contains("not a clonewire contact file")),
            "{changes:?}"
        );
        drop(file);
        let changes = discovery.scan();
        assert!(
            matches!(&changes[..], [Change::Removed { id, .. }] if id == "a"),
            "{changes:?}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
