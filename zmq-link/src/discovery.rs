//! Finding suites by the contact files they leave in a directory, whatever kind of
//! file that is: one mechanism, with a [`Finder`] per kind.
//!
//! A [`Finder`] looks once and says which contact files it found (and which exist but
//! cannot be read); [`Discovery`] keeps what the last look found and turns each new
//! look into [`Change`]s. Contact files are keyed by their path, so a file being
//! rewritten, or broken, keeps its suite until it reads well again or goes; a file
//! that says something else (a new run, another address) is the old suite removed and
//! a new one added. Kinds: clonewire suites' own files
//! (`clonewire_suite::contact::ContactDir`) and Cylc 8 run directories (in the
//! `clonewire-cylc` crate).
//!
//! A contact file whose process is gone is *stale*. [`Process::is_gone`] tells, for a
//! process on this host; what to do with one (it may still answer, e.g. from another
//! pid namespace) is the follower's call.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How often to look so a new suite shows up within about a second.
pub const SCAN_INTERVAL: Duration = Duration::from_secs(1);

/// What a contact file says, as far as discovery cares.
pub trait Announcement: Clone + std::fmt::Debug {
    /// Whether `other` announces the same run at the same address (a restart, or a
    /// suite that moved, is not).
    fn same_run(&self, other: &Self) -> bool;

    /// The process that wrote the file, if the file says.
    fn process(&self) -> Option<Process>;
}

/// A process on some host, as a contact file names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Process {
    /// The host it runs on.
    pub host: String,
    /// Its process id there.
    pub pid: u32,
}

impl Process {
    /// This process, on this host.
    pub fn this() -> Process {
        Process {
            host: host_name(),
            pid: std::process::id(),
        }
    }

    /// True when the process is known to be gone: it ran on this host and no process
    /// has its pid now. A process on another host is never known to be gone.
    pub fn is_gone(&self) -> bool {
        if !is_this_host(&self.host) {
            return false;
        }
        let Some(pid) = i32::try_from(self.pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        else {
            return true;
        };
        // EPERM: it exists, as another user's.
        matches!(
            rustix::process::test_kill_process(pid),
            Err(rustix::io::Errno::SRCH)
        )
    }
}

/// This host's name (`uname -n`).
pub fn host_name() -> String {
    rustix::system::uname().nodename().to_string_lossy().into_owned()
}

/// Whether `host` names this host: `localhost`, a loopback address, or this host's
/// name (its first label, so `node1` and `node1.example.org` are the same).
pub fn is_this_host(host: &str) -> bool {
    let first = |name: &str| name.split('.').next().unwrap_or_default().to_ascii_lowercase();
    matches!(host, "localhost" | "127.0.0.1" | "::1") || first(host) == first(&host_name())
}

/// A contact file found, and what it says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found<C> {
    /// The suite's id (the workflow id clients see).
    pub id: String,
    /// The file (or for Cylc, the run directory): the key of everything here.
    pub path: PathBuf,
    /// What it says.
    pub contact: C,
}

/// What one look found.
#[derive(Clone, Debug)]
pub struct Scan<C> {
    /// Readable contact files, by path.
    pub found: BTreeMap<PathBuf, Found<C>>,
    /// Contact files that exist but cannot be read or understood, by path, and why.
    pub unreadable: BTreeMap<PathBuf, String>,
}

impl<C> Default for Scan<C> {
    fn default() -> Scan<C> {
        Scan {
            found: BTreeMap::new(),
            unreadable: BTreeMap::new(),
        }
    }
}

/// One kind of contact file: where to look and how to read what is there.
pub trait Finder {
    /// What its files say.
    type Contact: Announcement;

    /// The directory looked in.
    fn root(&self) -> &Path;

    /// Looks once. A missing root is an empty scan. Must be bounded (a runaway tree
    /// costs a bounded look).
    fn find(&self) -> Scan<Self::Contact>;
}

/// A change in the set of suites found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change<C> {
    /// A contact file appeared (or now says another run).
    Added(Found<C>),
    /// A contact file went (or was replaced by another run's, which is `Added` next).
    Removed {
        /// The suite's id.
        id: String,
        /// The contact file.
        path: PathBuf,
    },
    /// A contact file cannot be read, on two looks in a row (a file caught being
    /// written is not reported). Said once until it reads well again; nothing else
    /// changes: a suite it announced stays, a new one is not added.
    Unreadable {
        /// The contact file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
}

/// What a [`Finder`] found last, and what changed since.
#[derive(Debug)]
pub struct Discovery<F: Finder> {
    finder: F,
    running: BTreeMap<PathBuf, Found<F::Contact>>,
    /// Unreadable files, and whether they have been reported.
    unreadable: BTreeMap<PathBuf, bool>,
}

impl<F: Finder> Discovery<F> {
    /// Starts with nothing found.
    pub fn new(finder: F) -> Discovery<F> {
        Discovery {
            finder,
            running: BTreeMap::new(),
            unreadable: BTreeMap::new(),
        }
    }

    /// The finder.
    pub fn finder(&self) -> &F {
        &self.finder
    }

    /// The directory looked in.
    pub fn root(&self) -> &Path {
        self.finder.root()
    }

    /// The suites found at the last look, by contact file.
    pub fn running(&self) -> &BTreeMap<PathBuf, Found<F::Contact>> {
        &self.running
    }

    /// The contact files reported [`Change::Unreadable`] that are still so.
    pub fn unreadable(&self) -> impl Iterator<Item = &Path> {
        self.unreadable
            .iter()
            .filter(|(_, said)| **said)
            .map(|(p, _)| p.as_path())
    }

    /// Looks again and says what changed: `Removed` first, then `Added`, then
    /// `Unreadable`, each in path order.
    pub fn scan(&mut self) -> Vec<Change<F::Contact>> {
        let scan = self.finder.find();
        self.update(scan)
    }

    /// Takes in one look's result and says what changed.
    pub fn update(&mut self, scan: Scan<F::Contact>) -> Vec<Change<F::Contact>> {
        let Scan { found, unreadable } = scan;
        let mut removed = Vec::new();
        let mut added = Vec::new();
        for (path, now) in &found {
            match self.running.get(path) {
                Some(known) if known.id == now.id && known.contact.same_run(&now.contact) => {}
                Some(known) => {
                    removed.push(Change::Removed {
                        id: known.id.clone(),
                        path: path.clone(),
                    });
                    added.push(Change::Added(now.clone()));
                }
                None => added.push(Change::Added(now.clone())),
            }
        }
        for (path, known) in &self.running {
            if !found.contains_key(path) && !unreadable.contains_key(path) {
                removed.push(Change::Removed {
                    id: known.id.clone(),
                    path: path.clone(),
                });
            }
        }
        let mut reported = Vec::new();
        let mut still = BTreeMap::new();
        for (path, why) in unreadable {
            let said = match self.unreadable.get(&path) {
                None => false,
                Some(true) => true,
                Some(false) => {
                    reported.push(Change::Unreadable {
                        path: path.clone(),
                        why,
                    });
                    true
                }
            };
            still.insert(path, said);
        }
        self.unreadable = still;
        let unreadable = &self.unreadable;
        self.running
            .retain(|path, _| found.contains_key(path) || unreadable.contains_key(path));
        self.running.extend(found);
        removed.into_iter().chain(added).chain(reported).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    #[derive(Clone, Debug, PartialEq)]
    struct Note(u32);

    impl Announcement for Note {
        fn same_run(&self, other: &Note) -> bool {
            self == other
        }
        fn process(&self) -> Option<Process> {
            None
        }
    }

    /// A finder that returns what the test set.
    struct Fixed(RefCell<Scan<Note>>);

    impl Finder for Fixed {
        type Contact = Note;
        fn root(&self) -> &Path {
            Path::new("/")
        }
        fn find(&self) -> Scan<Note> {
            self.0.borrow().clone()
        }
    }

    fn set(discovery: &Discovery<Fixed>, found: &[(&str, &str, u32)], bad: &[&str]) {
        let mut scan = Scan::default();
        for (path, id, run) in found {
            let path = PathBuf::from(path);
            scan.found.insert(
                path.clone(),
                Found {
                    id: (*id).into(),
                    path,
                    contact: Note(*run),
                },
            );
        }
        for path in bad {
            scan.unreadable.insert(PathBuf::from(path), "garbled".into());
        }
        *discovery.finder().0.borrow_mut() = scan;
    }

    fn changes(discovery: &mut Discovery<Fixed>) -> Vec<String> {
        discovery
            .scan()
            .into_iter()
            .map(|c| match c {
                Change::Added(f) => format!("+{}", f.id),
                Change::Removed { id, .. } => format!("-{id}"),
                Change::Unreadable { path, why } => format!("!{} {why}", path.display()),
            })
            .collect()
    }

    #[test]
    fn files_come_go_and_restart() {
        let mut d = Discovery::new(Fixed(RefCell::new(Scan::default())));
        assert!(changes(&mut d).is_empty());
        set(&d, &[("a.json", "a", 1), ("b.json", "b", 1)], &[]);
        assert_eq!(changes(&mut d), ["+a", "+b"]);
        assert!(changes(&mut d).is_empty(), "nothing changed");
        set(&d, &[("a.json", "a", 2)], &[]);
        assert_eq!(changes(&mut d), ["-a", "-b", "+a"], "a restarted, b went");
        assert_eq!(d.running().len(), 1);
    }

    #[test]
    fn an_unreadable_file_changes_nothing_and_is_reported_once_on_the_second_look() {
        let mut d = Discovery::new(Fixed(RefCell::new(Scan::default())));
        set(&d, &[("a.json", "a", 1)], &[]);
        assert_eq!(changes(&mut d), ["+a"]);
        set(&d, &[], &["a.json", "new.json"]);
        assert!(changes(&mut d).is_empty(), "a file caught being written");
        assert_eq!(
            changes(&mut d),
            ["!a.json garbled", "!new.json garbled"],
            "kept, not added, said once"
        );
        assert!(changes(&mut d).is_empty());
        assert_eq!(d.running().len(), 1);
        assert_eq!(d.unreadable().count(), 2);
        set(&d, &[("a.json", "a", 1)], &[]);
        assert!(changes(&mut d).is_empty(), "reads well again: the same run");
        assert_eq!(d.unreadable().count(), 0);
        set(&d, &[], &[]);
        assert_eq!(changes(&mut d), ["-a"]);
    }

    #[test]
    fn this_process_is_alive_and_a_finished_one_is_gone() {
        let me = Process::this();
        assert!(!me.is_gone());
        assert!(is_this_host("localhost") && is_this_host(&me.host));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let finished = Process {
            host: me.host.clone(),
            pid,
        };
        assert!(finished.is_gone());
        let elsewhere = Process {
            host: "another-host.invalid".into(),
            pid,
        };
        assert!(
            !elsewhere.is_gone(),
            "another host's processes are never known gone"
        );
    }
}
