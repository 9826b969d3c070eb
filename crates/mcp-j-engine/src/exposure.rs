//! What the jail could reach *inside* the host trees the user exposes, and what mcp-j does
//! about it.
//!
//! Two things in an exposed tree are dangerous beyond reading and writing files:
//!
//! - **Project config that host programs run code from.** A jail that writes
//!   `.git/hooks/pre-commit` or `core.fsmonitor` into `.git/config` of the workdir gets its
//!   code run by the user's next `git status` (or shell prompt); `.envrc`, `.vscode/`,
//!   `.idea/` and `.devcontainer/` are the same kind of thing. Inside every read-write tree
//!   these are bound read-only over themselves, unless that exact path is passed with
//!   `--rw`. Where none exists the jail can still create one (a new `.git` in a
//!   subdirectory of the user's repo): after the jail ends, anything of that name it
//!   created is moved aside (`NAME.mcp-j-quarantine`).
//! - **Unix sockets and FIFOs.** `connect()` and FIFO writes ignore read-only mounts, and
//!   Landlock has no right for path sockets: a socket inside `--ro ~` is a channel to
//!   whatever listens on it (gpg-agent, ssh control masters, IDEs, docker). Each is covered
//!   with an empty read-only file in the jail, unless it is itself passed with
//!   `--ro`/`--rw`.
//!
//! Both come from one bounded, breadth-first walk of every exposed tree on the host before
//! the jail starts ([`survey`]); the walk never follows a symlink. Its result becomes
//! [`Cover`]s in the spec, which init applies after every bind is attached. The walk is I/O;
//! every decision on its result is a pure function, unit-tested below.

use std::collections::{BTreeSet, VecDeque};
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};
use serde::{Deserialize, Serialize};

use crate::host_path::HostPath;
use crate::spec::{SandboxSpec, Workdir};

/// At most this many directory entries are looked at, in all exposed trees together.
/// More, and mcp-j refuses to start (exit 125): expose a smaller directory.
pub const MAX_WALK_ENTRIES: usize = 200_000;
/// Nothing may lie more than this many levels below an exposed path: an entry deeper, and
/// mcp-j refuses to start (exit 125).
pub const MAX_WALK_DEPTH: usize = 64;

/// Names of project files and directories that host programs run code from (git hooks and
/// `core.fsmonitor`, direnv, editors' tasks and settings, dev containers).
pub const PROJECT_CONFIG_NAMES: &[&str] = &[".git", ".envrc", ".vscode", ".idea", ".devcontainer"];

/// The suffix of a quarantined file's new name.
pub const QUARANTINE_SUFFIX: &str = ".mcp-j-quarantine";
/// How many numbered quarantine names are tried before giving up on one file.
const MAX_QUARANTINE_ATTEMPTS: u32 = 100;

/// What init does to one path inside an exposed tree. Paths are host paths, which are the
/// jail paths too (user paths are exposed under their own name).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Cover {
    /// Bind the path read-only over itself (project config in a read-write tree).
    ReadOnly(PathBuf),
    /// Bind an empty read-only file over it (a unix socket or FIFO).
    Endpoint(PathBuf),
}

impl Cover {
    /// The covered path.
    pub fn path(&self) -> &Path {
        match self {
            Cover::ReadOnly(p) | Cover::Endpoint(p) => p,
        }
    }
}

/// How an exposed tree is mounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `--ro`.
    ReadOnly,
    /// The workdir or `--rw`.
    ReadWrite,
}

/// One exposed host path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    /// The canonical host path.
    pub path: PathBuf,
    /// How it is exposed.
    pub access: Access,
    /// The descriptor the supervisor mounts (when the path was opened on the host): the
    /// walk starts from it, so it surveys the very directory the jail gets, not whatever
    /// the name means by then.
    pub host: Option<HostPath>,
}

/// An entry of interest a walk found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Its host path.
    pub path: PathBuf,
    /// What it is.
    pub kind: FoundKind,
}

/// See [`Found`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FoundKind {
    /// Project config (by name) in a read-write tree.
    ProjectConfig,
    /// A symlink with a project-config name in a read-write tree, and the canonical path
    /// it leads to on the host (if it resolves).
    ProjectConfigLink(Option<PathBuf>),
    /// A unix socket or a FIFO, in any exposed tree.
    Endpoint,
}

/// The walk's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Caps {
    entries: usize,
    depth: usize,
}

/// The bounds of every walk mcp-j makes.
const CAPS: Caps = Caps {
    entries: MAX_WALK_ENTRIES,
    depth: MAX_WALK_DEPTH,
};

/// The walk stopped at one of its caps.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapHit {
    /// [`MAX_WALK_ENTRIES`] entries were looked at.
    #[error(
        "the exposed trees hold more than {cap} entries (the cap on mcp-j's look for project \
         config and sockets); it stopped at `{}`", path.display()
    )]
    Entries {
        /// The cap.
        cap: usize,
        /// Where the walk stopped.
        path: PathBuf,
    },
    /// An entry deeper than [`MAX_WALK_DEPTH`].
    #[error(
        "`{}` is more than {cap} levels below an exposed path (the cap on mcp-j's look for \
         project config and sockets)", path.display()
    )]
    Depth {
        /// The cap.
        cap: usize,
        /// The first entry found too deep.
        path: PathBuf,
    },
}

/// What one walk found, and where it stopped if it hit a cap.
#[derive(Debug, Clone, Default)]
struct Walked {
    found: Vec<Found>,
    cap_hit: Option<CapHit>,
}

/// The exposed trees as they were before the jail started.
#[derive(Debug, Clone)]
pub struct Survey {
    roots: Vec<Root>,
    /// Project-config entries of the read-write trees before the jail ran.
    before: BTreeSet<PathBuf>,
    covers: Vec<Cover>,
}

/// What [`Survey::quarantine`] did.
#[derive(Debug, Default)]
pub struct Quarantined {
    /// `(created by the jail, moved to)`.
    pub moved: Vec<(PathBuf, PathBuf)>,
    /// Paths the jail created that could not be moved aside, and why.
    pub failed: Vec<(PathBuf, std::io::Error)>,
    /// The look after the run hit a cap: what lies beyond was not checked.
    pub incomplete: Option<CapHit>,
}

/// Walk every exposed tree of `spec` (bounded; see [`MAX_WALK_ENTRIES`],
/// [`MAX_WALK_DEPTH`]): what to cover in the jail, and the project config that exists now.
pub fn survey(spec: &SandboxSpec) -> Result<Survey, CapHit> {
    let roots = exposed_roots(spec);
    let walked = walk(&roots, CAPS);
    if let Some(cap) = walked.cap_hit {
        return Err(cap);
    }
    let covers = covers(&roots, &walked.found);
    let before = project_config_paths(&walked.found);
    Ok(Survey { roots, before, covers })
}

impl Survey {
    /// What init must cover, parents first.
    pub fn covers(&self) -> &[Cover] {
        &self.covers
    }

    /// After the jail has ended: move aside every project-config file or directory the
    /// jail created in a read-write tree (renamed within its directory, never replacing
    /// anything, never following a symlink).
    pub fn quarantine(&self) -> Quarantined {
        let rw: Vec<Root> = self
            .roots
            .iter()
            .filter(|r| r.access == Access::ReadWrite)
            .cloned()
            .collect();
        let walked = walk(&rw, CAPS);
        let mut done = Quarantined {
            incomplete: walked.cap_hit,
            ..Quarantined::default()
        };
        let after = project_config_paths(&walked.found);
        for path in created_by_the_jail(&self.before, &after) {
            match move_aside(&rw, &path) {
                Ok(to) => done.moved.push((path, to)),
                Err(e) => done.failed.push((path, e)),
            }
        }
        done
    }
}

// ---------------------------------------------------------------------------------------
// Decisions (pure)

/// The exposed trees of a spec: the workdir and `--rw` read-write, `--ro` read-only.
pub fn exposed_roots(spec: &SandboxSpec) -> Vec<Root> {
    let mut roots = Vec::new();
    if let Workdir::Host(dir) = &spec.workdir {
        roots.push(Root {
            path: dir.path.clone(),
            access: Access::ReadWrite,
            host: Some(dir.clone()),
        });
    }
    for (paths, access) in [(&spec.rw_paths, Access::ReadWrite), (&spec.ro_paths, Access::ReadOnly)] {
        for path in paths {
            if !roots.iter().any(|r| r.path == path.path) {
                roots.push(Root {
                    path: path.path.clone(),
                    access,
                    host: Some(path.clone()),
                });
            }
        }
    }
    roots
}

/// A project-config name ([`PROJECT_CONFIG_NAMES`]).
pub fn is_project_config(name: &OsStr) -> bool {
    PROJECT_CONFIG_NAMES.iter().any(|n| OsStr::new(n) == name)
}

/// The exposed tree `path` is in: the deepest root that contains it (nested roots are
/// mounts of their own).
fn owning_root<'r>(roots: &'r [Root], path: &Path) -> Option<&'r Root> {
    roots
        .iter()
        .filter(|r| path.starts_with(&r.path))
        .max_by_key(|r| r.path.components().count())
}

/// What to cover: project config found in read-write trees (a symlink's target when it
/// lies in a read-write tree), and every socket or FIFO; not a path the user exposed
/// itself; not one inside a path already made read-only. Parents first.
pub fn covers(roots: &[Root], found: &[Found]) -> Vec<Cover> {
    let explicit = |p: &Path| roots.iter().any(|r| r.path == p);
    let in_rw_tree = |p: &Path| owning_root(roots, p).is_some_and(|r| r.access == Access::ReadWrite);
    let mut read_only: Vec<PathBuf> = found
        .iter()
        .filter_map(|f| match &f.kind {
            FoundKind::ProjectConfig => Some(f.path.clone()),
            FoundKind::ProjectConfigLink(Some(target)) if in_rw_tree(target) => Some(target.clone()),
            FoundKind::ProjectConfigLink(_) | FoundKind::Endpoint => None,
        })
        .filter(|p| !explicit(p))
        .collect();
    read_only.sort_by_key(|p| (p.components().count(), p.clone()));
    read_only.dedup();
    let mut kept: Vec<PathBuf> = Vec::new();
    for path in read_only {
        // Everything below a read-only bind is read-only already (an explicit `--rw`
        // inside it is a mount of its own and stays writable).
        let below_kept = kept
            .iter()
            .any(|k| path.starts_with(k) && !roots.iter().any(|r| r.path.starts_with(k) && path.starts_with(&r.path)));
        if !below_kept {
            kept.push(path);
        }
    }
    let mut out: Vec<Cover> = kept.into_iter().map(Cover::ReadOnly).collect();
    let mut endpoints: Vec<PathBuf> = found
        .iter()
        .filter(|f| f.kind == FoundKind::Endpoint && !explicit(&f.path))
        .map(|f| f.path.clone())
        .collect();
    endpoints.sort_by_key(|p| (p.components().count(), p.clone()));
    endpoints.dedup();
    out.extend(endpoints.into_iter().map(Cover::Endpoint));
    out
}

/// The project-config entries (files, directories, symlinks) of a walk.
fn project_config_paths(found: &[Found]) -> BTreeSet<PathBuf> {
    found
        .iter()
        .filter(|f| matches!(f.kind, FoundKind::ProjectConfig | FoundKind::ProjectConfigLink(_)))
        .map(|f| f.path.clone())
        .collect()
}

/// Project config present after the run but not before, shallowest first, without those
/// inside another new one (they move with it).
pub fn created_by_the_jail(before: &BTreeSet<PathBuf>, after: &BTreeSet<PathBuf>) -> Vec<PathBuf> {
    let mut new: Vec<&PathBuf> = after.difference(before).collect();
    new.sort_by_key(|p| (p.components().count(), (*p).clone()));
    let mut out: Vec<PathBuf> = Vec::new();
    for path in new {
        if !out.iter().any(|o| path.starts_with(o)) {
            out.push(path.clone());
        }
    }
    out
}

/// The `attempt`-th name to move `name` aside to: `NAME.mcp-j-quarantine`, then
/// `NAME.mcp-j-quarantine.1`, `.2`, …
pub fn quarantine_name(name: &OsStr, attempt: u32) -> OsString {
    let mut out = name.to_os_string();
    out.push(QUARANTINE_SUFFIX);
    if attempt > 0 {
        out.push(format!(".{attempt}"));
    }
    out
}

// ---------------------------------------------------------------------------------------
// The walk (I/O)

fn resolve_beneath() -> ResolveFlags {
    ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS
}

/// Open `root` itself as a directory: from the descriptor the supervisor mounts when there
/// is one, else by name, not following a final symlink. `None` for a file (nothing below
/// it) or a path that is gone.
fn open_root(root: &Root) -> Option<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    match root.host.as_ref().and_then(HostPath::fd) {
        Some(fd) => rustix::fs::openat(fd, ".", flags, Mode::empty()).ok(),
        None => rustix::fs::open(&root.path, flags, Mode::empty()).ok(),
    }
}

/// Open the directory `rel` below `root_fd`, never through a symlink, never out of it.
fn open_dir_beneath(root_fd: BorrowedFd<'_>, rel: &Path) -> std::io::Result<OwnedFd> {
    if rel.as_os_str().is_empty() {
        return Ok(rustix::io::fcntl_dupfd_cloexec(root_fd, 0)?);
    }
    Ok(rustix::fs::openat2(
        root_fd,
        rel,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
        resolve_beneath(),
    )?)
}

/// Breadth first through every root (shallow entries first, so a cap cuts off the deep
/// ones), counting every entry against `caps`. A nested root is left to its
/// own walk. Directories that vanish or turn into symlinks meanwhile are skipped.
fn walk(roots: &[Root], caps: Caps) -> Walked {
    let mut walked = Walked::default();
    let mut entries = 0usize;
    for root in roots {
        let Some(root_fd) = open_root(root) else {
            continue;
        };
        let mut queue: VecDeque<PathBuf> = VecDeque::from([PathBuf::new()]);
        while let Some(rel) = queue.pop_front() {
            let Ok(dir_fd) = open_dir_beneath(root_fd.as_fd(), &rel) else {
                continue;
            };
            let Ok(dir) = rustix::fs::Dir::read_from(&dir_fd) else {
                continue;
            };
            for entry in dir {
                let Ok(entry) = entry else { break };
                let name = OsStr::from_bytes(entry.file_name().to_bytes());
                if name == "." || name == ".." {
                    continue;
                }
                let rel_path = rel.join(name);
                let path = root.path.join(&rel_path);
                entries += 1;
                if entries > caps.entries {
                    walked.cap_hit = Some(CapHit::Entries {
                        cap: caps.entries,
                        path,
                    });
                    return walked;
                }
                if rel_path.components().count() > caps.depth {
                    walked.cap_hit = Some(CapHit::Depth { cap: caps.depth, path });
                    return walked;
                }
                let mut kind = entry.file_type();
                if kind == FileType::Unknown {
                    kind = rustix::fs::statat(dir_fd.as_fd(), name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
                        .map_or(FileType::Unknown, |st| FileType::from_raw_mode(st.st_mode));
                }
                let project = root.access == Access::ReadWrite && is_project_config(name);
                match kind {
                    FileType::Socket | FileType::Fifo => walked.found.push(Found {
                        path,
                        kind: FoundKind::Endpoint,
                    }),
                    FileType::Symlink if project => {
                        let target = std::fs::canonicalize(&path).ok();
                        walked.found.push(Found {
                            path,
                            kind: FoundKind::ProjectConfigLink(target),
                        });
                    }
                    FileType::Directory => {
                        if project {
                            walked.found.push(Found {
                                path: path.clone(),
                                kind: FoundKind::ProjectConfig,
                            });
                        }
                        if roots.iter().any(|r| r.path == path) {
                            continue; // walked as a root of its own
                        }
                        queue.push_back(rel_path);
                    }
                    _ if project => walked.found.push(Found {
                        path,
                        kind: FoundKind::ProjectConfig,
                    }),
                    _ => {}
                }
            }
        }
    }
    walked
}

/// Rename `path` to the first free quarantine name in its own directory
/// (`renameat2(RENAME_NOREPLACE)`), reaching the directory from the read-write root that
/// holds it without following any symlink.
fn move_aside(roots: &[Root], path: &Path) -> std::io::Result<PathBuf> {
    let einval = || std::io::Error::from_raw_os_error(libc::EINVAL);
    let root = owning_root(roots, path).ok_or_else(einval)?;
    let name = path.file_name().ok_or_else(einval)?;
    let parent = path.parent().ok_or_else(einval)?;
    let rel_parent = parent.strip_prefix(&root.path).map_err(|_| einval())?;
    let root_fd = open_root(root).ok_or_else(|| std::io::Error::from_raw_os_error(libc::ENOENT))?;
    let dir = open_dir_beneath(root_fd.as_fd(), rel_parent)?;
    for attempt in 0..MAX_QUARANTINE_ATTEMPTS {
        let to = quarantine_name(name, attempt);
        match rustix::fs::renameat_with(
            dir.as_fd(),
            name,
            dir.as_fd(),
            to.as_os_str(),
            rustix::fs::RenameFlags::NOREPLACE,
        ) {
            Ok(()) => return Ok(parent.join(to)),
            Err(rustix::io::Errno::EXIST) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(std::io::Error::from_raw_os_error(libc::EEXIST))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rw(p: &str) -> Root {
        Root {
            path: p.into(),
            access: Access::ReadWrite,
            host: None,
        }
    }

    fn ro(p: &str) -> Root {
        Root {
            path: p.into(),
            access: Access::ReadOnly,
            host: None,
        }
    }

    fn found(p: &str, kind: FoundKind) -> Found {
        Found { path: p.into(), kind }
    }

    #[test]
    fn project_config_names() {
        for name in [".git", ".envrc", ".vscode", ".idea", ".devcontainer"] {
            assert!(is_project_config(OsStr::new(name)), "{name}");
        }
        for name in ["git", ".gitignore", ".git.mcp-j-quarantine", "src", ".env"] {
            assert!(!is_project_config(OsStr::new(name)), "{name}");
        }
    }

    #[test]
    fn workdir_and_rw_are_read_write_and_ro_read_only() {
        let spec = SandboxSpec {
            program: "p".into(),
            args: vec![],
            env: vec![],
            workdir: Workdir::Host(HostPath::unopened("/w")),
            ro_paths: vec![HostPath::unopened("/r")],
            rw_paths: vec![HostPath::unopened("/w/out"), HostPath::unopened("/w")],
            limits: crate::spec::Limits::default(),
            no_subprocess: false,
            limits_by_cgroup: false,
            host_ids: None,
            require_memory_limit: false,
            covers: vec![],
            egress: None,
            package: None,
        };
        let roots: Vec<(PathBuf, Access)> = exposed_roots(&spec).into_iter().map(|r| (r.path, r.access)).collect();
        let want: Vec<(PathBuf, Access)> = [rw("/w"), rw("/w/out"), ro("/r")]
            .into_iter()
            .map(|r| (r.path, r.access))
            .collect();
        assert_eq!(roots, want);
    }

    #[test]
    fn project_config_in_rw_trees_becomes_read_only_unless_named() {
        let roots = [rw("/w"), rw("/w/b/.git")];
        let f = [
            found("/w/.git", FoundKind::ProjectConfig),
            found("/w/a/.envrc", FoundKind::ProjectConfig),
            found("/w/b/.git", FoundKind::ProjectConfig), // named with --rw
        ];
        assert_eq!(
            covers(&roots, &f),
            vec![Cover::ReadOnly("/w/.git".into()), Cover::ReadOnly("/w/a/.envrc".into())]
        );
    }

    #[test]
    fn nested_project_config_is_covered_by_its_parent() {
        let roots = [rw("/w")];
        let f = [
            found("/w/.git/modules/x/.git", FoundKind::ProjectConfig),
            found("/w/.git", FoundKind::ProjectConfig),
        ];
        assert_eq!(covers(&roots, &f), vec![Cover::ReadOnly("/w/.git".into())]);
    }

    #[test]
    fn a_rw_root_inside_a_covered_dir_keeps_its_own_project_config_covered() {
        // --rw /w/.vscode/ext: .vscode is covered; a .git inside the explicit rw root
        // is not below any read-only bind of its own tree.
        let roots = [rw("/w"), rw("/w/.vscode/ext")];
        let f = [
            found("/w/.vscode", FoundKind::ProjectConfig),
            found("/w/.vscode/ext/.git", FoundKind::ProjectConfig),
        ];
        assert_eq!(
            covers(&roots, &f),
            vec![
                Cover::ReadOnly("/w/.vscode".into()),
                Cover::ReadOnly("/w/.vscode/ext/.git".into())
            ]
        );
    }

    #[test]
    fn a_link_is_covered_at_its_target_when_that_is_writable() {
        let roots = [rw("/w"), ro("/r")];
        let f = [
            found("/w/.git", FoundKind::ProjectConfigLink(Some("/w/gitdir".into()))),
            found("/w/a/.git", FoundKind::ProjectConfigLink(Some("/r/repo.git".into()))),
            found("/w/b/.git", FoundKind::ProjectConfigLink(None)),
        ];
        assert_eq!(covers(&roots, &f), vec![Cover::ReadOnly("/w/gitdir".into())]);
    }

    #[test]
    fn sockets_in_any_tree_are_covered_unless_named() {
        let roots = [ro("/home/u"), rw("/w"), ro("/home/u/.gnupg/S.gpg-agent")];
        let f = [
            found("/home/u/.ssh/ctl", FoundKind::Endpoint),
            found("/w/dev.sock", FoundKind::Endpoint),
            found("/home/u/.gnupg/S.gpg-agent", FoundKind::Endpoint),
        ];
        assert_eq!(
            covers(&roots, &f),
            vec![
                Cover::Endpoint("/w/dev.sock".into()),
                Cover::Endpoint("/home/u/.ssh/ctl".into())
            ]
        );
    }

    #[test]
    fn only_new_project_config_is_quarantined_shallowest_first() {
        let before: BTreeSet<PathBuf> = ["/w/.git"].iter().map(PathBuf::from).collect();
        let after: BTreeSet<PathBuf> = ["/w/.git", "/w/sub/.git", "/w/sub/.git/x/.envrc", "/w/a/b/.vscode"]
            .iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(
            created_by_the_jail(&before, &after),
            vec![PathBuf::from("/w/sub/.git"), PathBuf::from("/w/a/b/.vscode")]
        );
    }

    #[test]
    fn quarantine_names_count_up() {
        assert_eq!(quarantine_name(OsStr::new(".git"), 0), ".git.mcp-j-quarantine");
        assert_eq!(quarantine_name(OsStr::new(".git"), 2), ".git.mcp-j-quarantine.2");
    }

    fn tree() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = std::fs::canonicalize(dir.path()).expect("canonical");
        (dir, root)
    }

    #[test]
    fn the_walk_finds_config_and_sockets_without_following_links() {
        let (_dir, root) = tree();
        std::fs::create_dir_all(root.join("repo/.git/hooks")).expect("mkdir");
        std::fs::write(root.join("repo/.envrc"), "").expect("write");
        std::fs::create_dir(root.join("outside")).expect("mkdir");
        std::os::unix::fs::symlink(root.join("outside"), root.join("repo/link")).expect("symlink");
        let _l = std::os::unix::net::UnixListener::bind(root.join("outside/s")).expect("bind");
        let _m = std::os::unix::net::UnixListener::bind(root.join("repo/.git/s")).expect("bind");
        let walked = walk(&[rw(root.join("repo").to_str().expect("utf-8"))], CAPS);
        assert_eq!(walked.cap_hit, None);
        let mut paths: Vec<_> = walked.found.iter().map(|f| (f.path.clone(), f.kind.clone())).collect();
        paths.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            paths,
            vec![
                (root.join("repo/.envrc"), FoundKind::ProjectConfig),
                (root.join("repo/.git"), FoundKind::ProjectConfig),
                (root.join("repo/.git/s"), FoundKind::Endpoint),
            ]
        );
    }

    #[test]
    fn the_walk_stops_at_its_caps() {
        let (_dir, root) = tree();
        std::fs::create_dir_all(root.join("a/b/c")).expect("mkdir");
        std::fs::write(root.join("f"), "").expect("write");
        let roots = [ro(root.to_str().expect("utf-8"))];
        // Within both caps: no hit.
        let walked = walk(&roots, Caps { entries: 4, depth: 3 });
        assert_eq!(walked.cap_hit, None);
        let walked = walk(&roots, Caps { entries: 4, depth: 2 });
        assert_eq!(
            walked.cap_hit,
            Some(CapHit::Depth {
                cap: 2,
                path: root.join("a/b/c")
            })
        );
        let walked = walk(&roots, Caps { entries: 3, depth: 3 });
        assert!(
            matches!(walked.cap_hit, Some(CapHit::Entries { cap: 3, .. })),
            "{:?}",
            walked.cap_hit
        );
        let message = CapHit::Entries {
            cap: MAX_WALK_ENTRIES,
            path: "/w/x".into(),
        }
        .to_string();
        assert!(message.contains("200000") && message.contains("/w/x"), "{message}");
    }

    #[test]
    fn quarantine_moves_new_config_aside_without_replacing() {
        let (_dir, root) = tree();
        std::fs::create_dir_all(root.join(".git")).expect("mkdir");
        let spec_roots = vec![rw(root.to_str().expect("utf-8"))];
        let walked = walk(&spec_roots, CAPS);
        let survey = Survey {
            before: project_config_paths(&walked.found),
            covers: covers(&spec_roots, &walked.found),
            roots: spec_roots,
        };
        std::fs::create_dir_all(root.join("sub/.git")).expect("mkdir");
        std::fs::write(root.join("sub/.git/config"), "[core]\n").expect("write");
        std::fs::write(root.join("sub/.envrc"), "").expect("write");
        std::fs::write(root.join("sub/.envrc.mcp-j-quarantine"), "older").expect("write");
        let done = survey.quarantine();
        assert!(done.failed.is_empty(), "{:?}", done.failed);
        let mut moved = done.moved.clone();
        moved.sort();
        assert_eq!(
            moved,
            vec![
                (root.join("sub/.envrc"), root.join("sub/.envrc.mcp-j-quarantine.1")),
                (root.join("sub/.git"), root.join("sub/.git.mcp-j-quarantine")),
            ]
        );
        assert!(root.join(".git").is_dir(), "what was there before stays");
        assert!(!root.join("sub/.git").exists());
        assert_eq!(
            std::fs::read_to_string(root.join("sub/.envrc.mcp-j-quarantine")).expect("read"),
            "older"
        );
    }
}
