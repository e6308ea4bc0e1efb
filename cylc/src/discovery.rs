//! Finding the running workflows under a run directory (`~/cylc-run`, say): the
//! Cylc kind of [`clonewire_zmq::discovery`], the one mechanism `--cylc-run` and
//! `--discover` share.
//!
//! A workflow is running while its run directory holds `.service/contact`. Ids may
//! be nested (`demo/run1`); a workflow's id is its run directory's path relative to
//! the root, and the run directory is its key ([`Found::path`]). The look is cheap
//! and bounded: a few `stat`s per directory, at most [`MAX_DEPTH`] levels, never into
//! a run directory's own `log/`, `share/`, `work/` or `.service/`, and never through
//! `runN` (the link to the latest run, which is found under its real name), so each
//! run is followed once. Calling [`Discovery::scan`] every [`SCAN_INTERVAL`] sees a
//! workflow start or stop within that time.

use std::collections::{HashSet, VecDeque};
use std::path::{Path, PathBuf};

use clonewire_zmq::discovery::{Announcement, Change, Finder, Found, Process, Scan};

use crate::contact::{Contact, ContactError, CONTACT_FILE, SERVICE_DIR};

pub use clonewire_zmq::discovery::SCAN_INTERVAL;

/// How deep ids may be (Cylc's default `[install]max depth`).
pub const MAX_DEPTH: usize = 4;
/// Directories scanned per call at most: a runaway tree costs a bounded scan.
const MAX_DIRS: usize = 100_000;
/// Names never descended into: Cylc's own directories in a run directory, and the
/// links that would reach a run a second time.
const SKIPPED: [&str; 6] = ["runN", "_cylc-install", "log", "share", "work", SERVICE_DIR];
/// A directory holding one of these is a workflow (running or not): the scan does
/// not look for workflows inside it.
const WORKFLOW_MARKERS: [&str; 3] = ["flow.cylc", "suite.rc", "log"];

/// The running workflows under one root, as last scanned.
pub type Discovery = clonewire_zmq::discovery::Discovery<RunDir>;

/// A change in the set of running workflows: `Added` when a workflow runs (or runs
/// again, as a new run), `Removed` when its contact file went (or was replaced by a
/// new run's, which is `Added` next), `Unreadable` for a contact file that stays
/// unreadable.
pub type DiscoveryEvent = Change<Contact>;

impl Announcement for Contact {
    fn same_run(&self, other: &Contact) -> bool {
        Contact::same_run(self, other)
    }

    fn process(&self) -> Option<Process> {
        let pid = self.fields.get("CYLC_WORKFLOW_PID")?.parse().ok()?;
        Some(Process {
            host: self.host.clone(),
            pid,
        })
    }
}

/// A Cylc run directory tree (`~/cylc-run`): the [`Finder`] for `--cylc-run DIR`.
#[derive(Clone, Debug)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// Looks under `root` (which need not exist yet).
    pub fn new(root: impl Into<PathBuf>) -> RunDir {
        RunDir { root: root.into() }
    }
}

impl Finder for RunDir {
    type Contact = Contact;

    fn root(&self) -> &Path {
        &self.root
    }

    /// Running workflows by run directory, and the run directories whose contact file
    /// exists but cannot be read (yet).
    fn find(&self) -> Scan<Contact> {
        let mut scan = Scan::default();
        let mut seen = HashSet::new();
        let mut queue = VecDeque::from([(self.root.clone(), 0usize)]);
        let mut dirs = 0;
        while let Some((dir, depth)) = queue.pop_front() {
            dirs += 1;
            if dirs > MAX_DIRS {
                tracing::warn!(root = %self.root.display(), "stopped scanning after {MAX_DIRS} directories");
                break;
            }
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                if SKIPPED.contains(&name) || name.starts_with('.') {
                    continue;
                }
                let path = entry.path();
                // Follows symlinks (a run directory may live elsewhere), but each
                // real directory once.
                if !path.is_dir() {
                    continue;
                }
                let Ok(real) = path.canonicalize() else { continue };
                if !seen.insert(real) {
                    continue;
                }
                let Ok(relative) = path.strip_prefix(&self.root) else {
                    continue;
                };
                let Some(id) = relative.to_str().map(str::to_owned) else {
                    continue;
                };
                if path.join(SERVICE_DIR).join(CONTACT_FILE).exists() {
                    match Contact::load(&path) {
                        Ok(contact) => {
                            let found = Found {
                                id,
                                path: path.clone(),
                                contact,
                            };
                            scan.found.insert(path, found);
                        }
                        Err(e @ (ContactError::Read { .. } | ContactError::Bad { .. })) => {
                            scan.unreadable.insert(path, e.to_string());
                        }
                    }
                } else if WORKFLOW_MARKERS.iter().any(|m| path.join(m).exists()) {
                    // A stopped workflow: nothing to follow inside it.
                } else if depth + 1 < MAX_DEPTH {
                    queue.push_back((path, depth + 1));
                }
            }
        }
        scan
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contact_text(port: u16, uuid: &str) -> String {
        format!(
            "CYLC_WORKFLOW_HOST=localhost\nCYLC_WORKFLOW_PORT={port}\n\
             CYLC_WORKFLOW_PUBLISH_PORT={}\nCYLC_WORKFLOW_UUID={uuid}\n",
            port + 1
        )
    }

    fn start(root: &Path, id: &str, port: u16, uuid: &str) -> PathBuf {
        let dir = root.join(id);
        std::fs::create_dir_all(dir.join(SERVICE_DIR)).unwrap();
        std::fs::create_dir_all(dir.join("log")).unwrap();
        std::fs::write(dir.join("flow.cylc"), "").unwrap();
        std::fs::write(dir.join(SERVICE_DIR).join(CONTACT_FILE), contact_text(port, uuid)).unwrap();
        dir
    }

    fn ids(events: &[DiscoveryEvent]) -> Vec<String> {
        events
            .iter()
            .map(|e| match e {
                DiscoveryEvent::Added(found) => format!("+{}", found.id),
                DiscoveryEvent::Removed { id, .. } => format!("-{id}"),
                DiscoveryEvent::Unreadable { path, .. } => format!("!{}", path.display()),
            })
            .collect()
    }

    fn temp_root(name: &str) -> PathBuf {
        let root = std::env::temp_dir().join(format!("clonewire-discovery-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        root
    }

    #[test]
    fn finds_nested_running_workflows_once_and_sees_them_go() {
        let root = temp_root("nested");
        let mut discovery = Discovery::new(RunDir::new(&root));
        assert!(discovery.scan().is_empty());

        start(&root, "flat", 5000, "a");
        let run1 = start(&root, "demo/run1", 5010, "b");
        // runN points at the latest run: that run is followed once, as demo/run1.
        std::os::unix::fs::symlink(&run1, root.join("demo/runN")).unwrap();
        // A stopped workflow, and a workflow nested in a run directory's work/.
        std::fs::create_dir_all(root.join("old/log")).unwrap();
        start(&root, "flat/work/1/foo", 5020, "c");
        let events = discovery.scan();
        assert_eq!(ids(&events), ["+demo/run1", "+flat"]);
        let DiscoveryEvent::Added(found) = &events[0] else {
            unreachable!()
        };
        assert_eq!(found.path, run1);
        assert_eq!(found.contact.req_endpoint(), "tcp://localhost:5010");
        assert_eq!(found.contact.process(), None, "no CYLC_WORKFLOW_PID");
        assert!(discovery.scan().is_empty(), "nothing changed");

        std::fs::remove_file(root.join("flat/.service/contact")).unwrap();
        assert_eq!(ids(&discovery.scan()), ["-flat"]);

        // A restart is a new run: removed, then added.
        std::fs::write(run1.join(".service/contact"), contact_text(5030, "d")).unwrap();
        assert_eq!(ids(&discovery.scan()), ["-demo/run1", "+demo/run1"]);
        assert_eq!(discovery.running().len(), 1);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_half_written_contact_file_neither_adds_nor_removes() {
        let root = temp_root("partial");
        let mut discovery = Discovery::new(RunDir::new(&root));
        let dir = start(&root, "w", 5000, "a");
        std::fs::write(dir.join(".service/contact"), "CYLC_WORKFLOW_HOST=loc").unwrap();
        assert!(discovery.scan().is_empty());
        std::fs::write(dir.join(".service/contact"), contact_text(5000, "a")).unwrap();
        assert_eq!(ids(&discovery.scan()), ["+w"]);
        std::fs::write(dir.join(".service/contact"), "CYLC_WORKFLOW_HOST=loc").unwrap();
        assert!(discovery.scan().is_empty(), "kept while unreadable");
        std::fs::remove_file(dir.join(".service/contact")).unwrap();
        assert_eq!(ids(&discovery.scan()), ["-w"]);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn the_schedulers_host_and_pid_are_its_process() {
        let root = temp_root("pid");
        let dir = start(&root, "w", 5000, "a");
        let text = contact_text(5000, "a") + "CYLC_WORKFLOW_PID=4242\n";
        std::fs::write(dir.join(".service/contact"), text).unwrap();
        let mut discovery = Discovery::new(RunDir::new(&root));
        assert_eq!(ids(&discovery.scan()), ["+w"]);
        let process = discovery.running()[&dir].contact.process().unwrap();
        assert_eq!((process.host.as_str(), process.pid), ("localhost", 4242));
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn depth_is_bounded() {
        let root = temp_root("deep");
        start(&root, "a/b/c/d", 5000, "x");
        start(&root, "a/b/c/d/e", 5010, "y");
        start(&root, "p/q/r/s/t", 5020, "z");
        let mut discovery = Discovery::new(RunDir::new(&root));
        assert_eq!(ids(&discovery.scan()), ["+a/b/c/d"]);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_missing_root_is_empty_until_it_appears() {
        let root = temp_root("late").join("cylc-run");
        let mut discovery = Discovery::new(RunDir::new(&root));
        assert!(discovery.scan().is_empty());
        start(&root, "w", 5000, "a");
        assert_eq!(ids(&discovery.scan()), ["+w"]);
        std::fs::remove_dir_all(root.parent().unwrap()).unwrap();
    }
}
