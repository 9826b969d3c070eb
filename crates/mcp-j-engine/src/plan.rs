//! The jail's filesystem as data: an ordered list of mount operations built from a
//! [`SandboxSpec`] and a few facts about the host, with no I/O, so it is unit-tested without
//! privileges. `jail.rs` carries the list out on a fresh tmpfs before `pivot_root`.
//!
//! The picture (docs/SANDBOX.md): a read-only tmpfs root; the system directories bound
//! read-only; a minimal `/etc` of synthetic files plus the few host files programs need to
//! run; a fresh `/proc`; a `/dev` of five device nodes; private `/tmp` and `/dev/shm`; the
//! working directory and `--rw` paths read-write and not executable; `--ro` paths
//! read-only and executable; nothing else of the host.

use std::path::{Component, Path, PathBuf};

use crate::exposure::Cover;
use crate::host_path::HostPath;
use crate::spec::{JAIL_GID, JAIL_UID, PACKAGE_DIR, SandboxSpec, Workdir};

/// What a bind mount allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindAccess {
    /// Read-only, files may be executed (system directories, `--ro`).
    ReadExec,
    /// Read-only, nothing executable (host `/etc` files).
    ReadOnly,
    /// Read-write, nothing executable (workdir, `--rw`).
    ReadWrite,
    /// A device node: read-write, devices allowed, nothing executable.
    Device,
}

/// One step of building the jail's root. Paths are absolute paths inside the jail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountOp {
    /// Create a directory (and missing parents) on the root tmpfs.
    Dir {
        /// Where.
        path: PathBuf,
    },
    /// Bind a host path at `target`, mount point created as needed.
    Bind {
        /// What is bound.
        source: BindSource,
        /// Jail path.
        target: PathBuf,
        /// Access.
        access: BindAccess,
        /// For a root caller, an idmapped mount, so that host root's files there belong to
        /// the jail's user: the read-write paths the user chose, and PROG's own file. Never
        /// a read-only path: idmapping would hand root's 0600 files and sockets to the jail.
        idmap: bool,
    },
    /// A fresh tmpfs (nosuid, nodev, noexec).
    Tmpfs {
        /// Jail path.
        path: PathBuf,
        /// Size limit in bytes.
        size_bytes: u64,
        /// Mode of its root directory.
        mode: u32,
    },
    /// A fresh procfs for the jail's PID namespace.
    Proc {
        /// Jail path.
        path: PathBuf,
    },
    /// A symbolic link.
    Symlink {
        /// Where the link is.
        path: PathBuf,
        /// What it points at.
        target: PathBuf,
    },
    /// A regular file written on the root tmpfs (before it becomes read-only).
    File {
        /// Where.
        path: PathBuf,
        /// Its contents.
        contents: String,
    },
    /// Bind a path inside a user's read-write tree read-only over itself (project config
    /// that host programs run code from). Applied after every bind; skipped if the path
    /// is gone or became a symlink.
    ReadOnlyOverItself {
        /// Jail path.
        path: PathBuf,
    },
    /// Bind an empty read-only file over a path inside a user's tree (a host unix socket
    /// or FIFO: `connect` and FIFO writes ignore read-only mounts). Applied after every
    /// bind; skipped if the path is gone or became a symlink or directory.
    EmptyFileOver {
        /// Jail path.
        path: PathBuf,
    },
}

/// Where a bind mount's tree comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindSource {
    /// A fixed host path opened by name: system directories, `/etc` files, device nodes.
    Named(PathBuf),
    /// PROG's own file, when it lives in a writable place (the exec exception): its
    /// canonical path, opened with no symlink allowed anywhere on the way, so a jail that
    /// swaps the file for a link while we start gets a failed setup, not another file.
    Program(PathBuf),
    /// A path the user exposed (`--ro`, `--rw`, the workdir), resolved once on the host:
    /// the descriptor the helper was passed at this number ([`crate::host_path`]). Never
    /// looked up by name again.
    Passed {
        /// The helper's descriptor number; `None` until the supervisor passes it.
        helper_fd: Option<std::os::fd::RawFd>,
    },
}

/// What one top-level host path is, as far as the plan cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostEntry {
    /// Not there.
    Missing,
    /// A directory.
    Dir,
    /// A regular file (or device, for `/dev` nodes).
    File,
    /// A symbolic link with this target.
    Symlink(PathBuf),
}

/// Facts about the host the plan depends on, gathered by [`HostLayout::probe`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostLayout {
    /// `(path, kind)` for each of [`SYSTEM_PATHS`], [`ETC_PATHS`] and [`DEV_NODES`].
    pub entries: Vec<(PathBuf, HostEntry)>,
    /// The program's host path when it lives in a writable place and must stay executable
    /// (PROG is the one exception to "nothing writable is executable").
    pub exec_exception: Option<PathBuf>,
}

/// System directories (or merged-/usr symlinks) exposed read-only and executable.
pub const SYSTEM_PATHS: &[&str] = &["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"];

/// Host `/etc` entries programs need to run; bound read-only when present. Everything else
/// of `/etc` (shadow, hostname, machine-id, ssh keys, …) stays out.
pub const ETC_PATHS: &[&str] = &[
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/ca-certificates.conf",
    "/etc/pki",
    "/etc/crypto-policies",
    "/etc/localtime",
    "/etc/timezone",
    "/etc/alternatives",
    "/etc/protocols",
    "/etc/services",
    "/etc/mime.types",
];

/// Device nodes bound from the host's `/dev`. No tty, no disk, no memory device.
pub const DEV_NODES: &[&str] = &["/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"];

/// Size of the read-only root tmpfs: it holds mount points and a few small files.
pub const ROOT_TMPFS_BYTES: u64 = 1024 * 1024;
/// Size of `/dev`'s tmpfs.
const DEV_TMPFS_BYTES: u64 = 64 * 1024;

/// Why a spec cannot be turned into a plan.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    /// A path is relative, not normal, or in a place that cannot be exposed.
    #[error("cannot expose `{path}`: {reason}")]
    BadPath {
        /// The path.
        path: PathBuf,
        /// Why.
        reason: &'static str,
    },
    /// The same path is asked for read-only and read-write.
    #[error("`{0}` is given both read-only and read-write")]
    Conflict(PathBuf),
}

impl HostLayout {
    /// Look at the host: `lstat` of each known path; the exec exception from the spec.
    pub fn probe(spec: &SandboxSpec) -> HostLayout {
        let entries = SYSTEM_PATHS
            .iter()
            .chain(ETC_PATHS)
            .chain(DEV_NODES)
            .map(|p| (PathBuf::from(p), host_entry(Path::new(p))))
            .collect();
        HostLayout {
            entries,
            exec_exception: exec_exception(spec),
        }
    }

    fn entry(&self, path: &str) -> &HostEntry {
        self.entries
            .iter()
            .find(|(p, _)| p == Path::new(path))
            .map_or(&HostEntry::Missing, |(_, e)| e)
    }
}

fn host_entry(path: &Path) -> HostEntry {
    match std::fs::symlink_metadata(path) {
        Err(_) => HostEntry::Missing,
        Ok(m) if m.file_type().is_symlink() => match std::fs::read_link(path) {
            Ok(target) => HostEntry::Symlink(target),
            Err(_) => HostEntry::Missing,
        },
        Ok(m) if m.is_dir() => HostEntry::Dir,
        Ok(_) => HostEntry::File,
    }
}

/// The program's canonical host path, when it is given as a path (not a bare name) and
/// lies under the working directory or a `--rw` path: those mounts are `noexec`, so the
/// program file alone is bound again, read-only and executable.
fn exec_exception(spec: &SandboxSpec) -> Option<PathBuf> {
    if !spec.program.contains('/') {
        return None;
    }
    let given = Path::new(&spec.program);
    let host_path = if given.is_absolute() {
        given.to_path_buf()
    } else {
        match &spec.workdir {
            Workdir::Host(dir) => dir.path.join(given),
            Workdir::Private | Workdir::Package => return None,
        }
    };
    let canonical = std::fs::canonicalize(host_path).ok()?;
    if !canonical.is_file() {
        return None;
    }
    let writable = writable_roots(spec);
    writable.iter().any(|w| canonical.starts_with(w)).then_some(canonical)
}

fn writable_roots(spec: &SandboxSpec) -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = spec.rw_paths.iter().map(|p| p.path.clone()).collect();
    if let Workdir::Host(dir) = &spec.workdir {
        roots.push(dir.path.clone());
    }
    roots
}

/// Check a user-supplied path: absolute, normal (no `.`/`..`), not `/`, not under `/proc`
/// or `/dev` (which the jail builds itself).
fn check_user_path(path: &Path) -> Result<(), PlanError> {
    let bad = |reason| {
        Err(PlanError::BadPath {
            path: path.to_path_buf(),
            reason,
        })
    };
    if !path.is_absolute() {
        return bad("not an absolute path");
    }
    if path
        .components()
        .any(|c| matches!(c, Component::CurDir | Component::ParentDir))
    {
        return bad("not a normal path");
    }
    if path == Path::new("/") {
        return bad("the whole host root cannot be exposed");
    }
    if path.starts_with("/proc") || path.starts_with("/dev") {
        return bad("the jail builds /proc and /dev itself");
    }
    Ok(())
}

/// The synthetic `/etc/passwd`: the jail's user and root, and nobody.
fn passwd() -> String {
    format!(
        "root:x:0:0:root:/root:/usr/sbin/nologin\n\
         sandbox:x:{JAIL_UID}:{JAIL_GID}:mcp-j sandbox:/tmp:/usr/sbin/nologin\n\
         nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
    )
}

fn group() -> String {
    format!("root:x:0:\nsandbox:x:{JAIL_GID}:\nnogroup:x:65534:\n")
}

const HOSTS: &str = "127.0.0.1\tlocalhost mcp-j\n::1\tlocalhost ip6-localhost ip6-loopback\n";
const NSSWITCH: &str = "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n\
networks: files\nprotocols: files\nservices: files\n";

/// The jail's resolver with an allowlist: the DNS stub (`network::DNS_PORT`) on the jail's
/// own loopback, which answers allowlisted names only. One try, short timeout: the stub
/// answers at once or not at all.
const RESOLV_CONF: &str = "nameserver 127.0.0.1\noptions timeout:2 attempts:1\n";

/// The TCP ports the jail may connect to with an allowlist: the proxy's and the
/// allowlist's (where init's listeners are).
#[must_use]
pub fn connect_ports(egress: &crate::spec::EgressSpec) -> Vec<u16> {
    let mut ports = egress.ports.clone();
    ports.push(egress.proxy_port);
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// Build the ordered mount plan.
pub fn mount_plan(spec: &SandboxSpec, host: &HostLayout) -> Result<Vec<MountOp>, PlanError> {
    let mut ops = Vec::new();

    // System directories: replicate merged-/usr symlinks, bind real directories.
    for path in SYSTEM_PATHS {
        match host.entry(path) {
            HostEntry::Dir => ops.push(MountOp::Bind {
                source: BindSource::Named(path.into()),
                target: path.into(),
                access: BindAccess::ReadExec,
                idmap: false,
            }),
            HostEntry::Symlink(target) => ops.push(MountOp::Symlink {
                path: path.into(),
                target: target.clone(),
            }),
            HostEntry::File | HostEntry::Missing => {}
        }
    }

    // A minimal /etc.
    ops.push(MountOp::Dir { path: "/etc".into() });
    for (name, contents) in [
        ("passwd", passwd()),
        ("group", group()),
        ("hosts", HOSTS.to_string()),
        ("nsswitch.conf", NSSWITCH.to_string()),
        ("hostname", format!("{}\n", crate::spec::JAIL_HOSTNAME)),
    ] {
        ops.push(MountOp::File {
            path: Path::new("/etc").join(name),
            contents,
        });
    }
    // With an allowlist, the jail's only resolver is the DNS stub on its loopback.
    if spec.egress.is_some() {
        ops.push(MountOp::File {
            path: "/etc/resolv.conf".into(),
            contents: RESOLV_CONF.to_string(),
        });
    }
    for path in ETC_PATHS {
        match host.entry(path) {
            HostEntry::Dir | HostEntry::File => ops.push(MountOp::Bind {
                source: BindSource::Named(path.into()),
                target: path.into(),
                access: BindAccess::ReadOnly,
                idmap: false,
            }),
            HostEntry::Symlink(target) => ops.push(MountOp::Symlink {
                path: path.into(),
                target: target.clone(),
            }),
            HostEntry::Missing => {}
        }
    }

    // A fresh /proc for the jail's PID namespace.
    ops.push(MountOp::Proc { path: "/proc".into() });

    // A minimal /dev.
    ops.push(MountOp::Tmpfs {
        path: "/dev".into(),
        size_bytes: DEV_TMPFS_BYTES,
        mode: 0o755,
    });
    for node in DEV_NODES {
        if *host.entry(node) == HostEntry::File {
            ops.push(MountOp::Bind {
                source: BindSource::Named(node.into()),
                target: node.into(),
                access: BindAccess::Device,
                idmap: false,
            });
        }
    }
    for (link, target) in [
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
    ] {
        ops.push(MountOp::Symlink {
            path: link.into(),
            target: target.into(),
        });
    }
    // Shared memory and temporary files are memory: bound by the memory limit.
    ops.push(MountOp::Tmpfs {
        path: "/dev/shm".into(),
        size_bytes: spec.limits.memory_bytes,
        mode: 0o1777,
    });
    ops.push(MountOp::Tmpfs {
        path: "/tmp".into(),
        size_bytes: spec.limits.memory_bytes,
        mode: 0o1777,
    });

    // The user's paths, each at its real path, parents before children whatever order
    // they were given in.
    let mut user: Vec<(&HostPath, BindAccess)> = Vec::new();
    if let Workdir::Host(dir) = &spec.workdir {
        user.push((dir, BindAccess::ReadWrite));
    }
    user.extend(spec.ro_paths.iter().map(|p| (p, BindAccess::ReadExec)));
    user.extend(spec.rw_paths.iter().map(|p| (p, BindAccess::ReadWrite)));
    for (path, _) in &user {
        check_user_path(&path.path)?;
        if spec.package.is_some() && path.path.starts_with(PACKAGE_DIR) {
            return Err(PlanError::BadPath {
                path: path.path.clone(),
                reason: "the package is mounted at /pkg",
            });
        }
    }
    if spec.workdir == Workdir::Package && spec.package.is_none() {
        return Err(PlanError::BadPath {
            path: PACKAGE_DIR.into(),
            reason: "the working directory is the package, and there is none",
        });
    }
    for ro in &spec.ro_paths {
        if spec.rw_paths.iter().any(|rw| rw.path == ro.path) {
            return Err(PlanError::Conflict(ro.path.clone()));
        }
    }
    user.sort_by_key(|(p, _)| p.path.components().count());
    user.dedup_by(|a, b| a.0.path == b.0.path);
    for (path, access) in user {
        ops.push(MountOp::Bind {
            source: BindSource::Passed {
                helper_fd: path.helper_fd,
            },
            target: path.path.clone(),
            access,
            idmap: access == BindAccess::ReadWrite,
        });
    }
    // The package (`run REF`): its files as unpacked, read-only, at /pkg.
    if let Some(package) = &spec.package {
        ops.push(MountOp::Bind {
            source: BindSource::Passed {
                helper_fd: package.helper_fd,
            },
            target: PACKAGE_DIR.into(),
            access: BindAccess::ReadExec,
            idmap: false,
        });
    }

    if let Some(prog) = &host.exec_exception {
        ops.push(MountOp::Bind {
            source: BindSource::Program(prog.clone()),
            target: prog.clone(),
            access: BindAccess::ReadExec,
            idmap: true,
        });
    }
    Ok(ops)
}

/// The covers of `spec` ([`crate::exposure`]) as mount operations, for init to apply after
/// every bind of [`mount_plan`]: parents first, and only paths strictly inside a tree the
/// user exposed (the spec is the supervisor's, but a cover anywhere else would be a bug).
pub fn cover_ops(spec: &SandboxSpec) -> Vec<MountOp> {
    let roots: Vec<PathBuf> = writable_roots(spec)
        .into_iter()
        .chain(spec.ro_paths.iter().map(|p| p.path.clone()))
        .collect();
    let inside_a_root =
        |p: &Path| check_user_path(p).is_ok() && roots.iter().any(|r| p.starts_with(r) && p != r.as_path());
    let mut covers: Vec<&Cover> = spec.covers.iter().filter(|c| inside_a_root(c.path())).collect();
    // Read-only binds first (an endpoint inside one is covered on top of it), each kind
    // parents first.
    covers.sort_by_key(|c| (matches!(c, Cover::Endpoint(_)), c.path().components().count()));
    covers
        .into_iter()
        .map(|c| match c {
            Cover::ReadOnly(path) => MountOp::ReadOnlyOverItself { path: path.clone() },
            Cover::Endpoint(path) => MountOp::EmptyFileOver { path: path.clone() },
        })
        .collect()
}

/// Paths (inside the jail) where files may be written: the Landlock picture of the plan.
pub fn writable_paths(spec: &SandboxSpec) -> Vec<PathBuf> {
    let mut paths = vec![PathBuf::from("/tmp"), PathBuf::from("/dev/shm")];
    paths.extend(writable_roots(spec));
    paths
}

/// Paths (inside the jail) whose files may be executed.
pub fn executable_paths(spec: &SandboxSpec, host: &HostLayout) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = SYSTEM_PATHS
        .iter()
        .filter(|p| *host.entry(p) == HostEntry::Dir)
        .map(PathBuf::from)
        .collect();
    paths.extend(spec.ro_paths.iter().map(|p| p.path.clone()));
    paths.extend(spec.package.iter().map(|_| PathBuf::from(PACKAGE_DIR)));
    paths.extend(host.exec_exception.iter().cloned());
    paths
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Limits;

    fn spec() -> SandboxSpec {
        SandboxSpec {
            program: "server".into(),
            args: vec![],
            env: vec![],
            workdir: Workdir::Host(HostPath::unopened("/home/u/proj")),
            ro_paths: vec![HostPath::unopened("/opt/tools")],
            rw_paths: vec![HostPath::unopened("/home/u/proj/out/cache")],
            limits: Limits::default(),
            no_subprocess: false,
            limits_by_cgroup: false,
            host_ids: None,
            require_memory_limit: false,
            covers: vec![],
            egress: None,
            package: None,
        }
    }

    fn merged_usr() -> HostLayout {
        HostLayout {
            entries: vec![
                ("/usr".into(), HostEntry::Dir),
                ("/bin".into(), HostEntry::Symlink("usr/bin".into())),
                ("/lib".into(), HostEntry::Symlink("usr/lib".into())),
                ("/lib64".into(), HostEntry::Symlink("usr/lib64".into())),
                ("/sbin".into(), HostEntry::Symlink("usr/sbin".into())),
                ("/etc/ld.so.cache".into(), HostEntry::File),
                ("/etc/ssl".into(), HostEntry::Dir),
                (
                    "/etc/localtime".into(),
                    HostEntry::Symlink("/usr/share/zoneinfo/UTC".into()),
                ),
                ("/dev/null".into(), HostEntry::File),
                ("/dev/urandom".into(), HostEntry::File),
            ],
            exec_exception: None,
        }
    }

    fn binds(ops: &[MountOp]) -> Vec<(String, BindAccess)> {
        ops.iter()
            .filter_map(|op| match op {
                MountOp::Bind { target, access, .. } => Some((target.display().to_string(), *access)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn only_the_expected_host_paths_are_bound() {
        let ops = mount_plan(&spec(), &merged_usr()).expect("plan");
        assert_eq!(
            binds(&ops),
            vec![
                ("/usr".to_string(), BindAccess::ReadExec),
                ("/etc/ld.so.cache".to_string(), BindAccess::ReadOnly),
                ("/etc/ssl".to_string(), BindAccess::ReadOnly),
                ("/dev/null".to_string(), BindAccess::Device),
                ("/dev/urandom".to_string(), BindAccess::Device),
                ("/opt/tools".to_string(), BindAccess::ReadExec),
                ("/home/u/proj".to_string(), BindAccess::ReadWrite),
                ("/home/u/proj/out/cache".to_string(), BindAccess::ReadWrite),
            ]
        );
    }

    #[test]
    fn user_paths_come_from_their_descriptors_and_only_read_write_ones_are_idmapped() {
        let ops = mount_plan(&spec(), &merged_usr()).expect("plan");
        for op in &ops {
            let MountOp::Bind {
                source,
                target,
                access,
                idmap,
            } = op
            else {
                continue;
            };
            let user = target.starts_with("/home/u") || target.starts_with("/opt/tools");
            assert_eq!(
                matches!(source, BindSource::Passed { .. }),
                user,
                "{} bound from {source:?}",
                target.display()
            );
            assert_eq!(*idmap, user && *access == BindAccess::ReadWrite, "{}", target.display());
        }
    }

    #[test]
    fn merged_usr_links_are_replicated_not_bound() {
        let ops = mount_plan(&spec(), &merged_usr()).expect("plan");
        assert!(ops.contains(&MountOp::Symlink {
            path: "/bin".into(),
            target: "usr/bin".into()
        }));
        assert!(ops.contains(&MountOp::Symlink {
            path: "/etc/localtime".into(),
            target: "/usr/share/zoneinfo/UTC".into()
        }));
    }

    #[test]
    fn etc_is_synthetic_and_never_has_secrets() {
        let ops = mount_plan(&spec(), &merged_usr()).expect("plan");
        let files: Vec<_> = ops
            .iter()
            .filter_map(|op| match op {
                MountOp::File { path, .. } => Some(path.display().to_string()),
                _ => None,
            })
            .collect();
        assert_eq!(
            files,
            [
                "/etc/passwd",
                "/etc/group",
                "/etc/hosts",
                "/etc/nsswitch.conf",
                "/etc/hostname"
            ]
        );
        let all = format!("{ops:?}");
        for secret in ["shadow", "sudoers", "ssh", "machine-id", "/root"] {
            assert!(!all.contains(&format!("/etc/{secret}")), "{secret} exposed");
        }
    }

    #[test]
    fn tmp_and_shm_are_private_and_bounded_by_memory() {
        let mut s = spec();
        s.limits.memory_bytes = 64 << 20;
        let ops = mount_plan(&s, &merged_usr()).expect("plan");
        for path in ["/tmp", "/dev/shm"] {
            assert!(ops.contains(&MountOp::Tmpfs {
                path: path.into(),
                size_bytes: 64 << 20,
                mode: 0o1777
            }));
        }
    }

    #[test]
    fn parents_are_mounted_before_children() {
        let mut s = spec();
        s.rw_paths = vec![HostPath::unopened("/a/b/c"), HostPath::unopened("/a")];
        s.ro_paths = vec![HostPath::unopened("/a/b")];
        let ops = mount_plan(&s, &merged_usr()).expect("plan");
        let order: Vec<_> = binds(&ops)
            .into_iter()
            .map(|(p, _)| p)
            .filter(|p| p.starts_with("/a"))
            .collect();
        assert_eq!(order, ["/a", "/a/b", "/a/b/c"]);
    }

    #[test]
    fn tmp_is_mounted_before_a_workdir_inside_it() {
        let mut s = spec();
        s.workdir = Workdir::Host(HostPath::unopened("/tmp/work"));
        let ops = mount_plan(&s, &merged_usr()).expect("plan");
        let tmp = ops
            .iter()
            .position(|op| matches!(op, MountOp::Tmpfs { path, .. } if path == Path::new("/tmp")));
        let work = ops
            .iter()
            .position(|op| matches!(op, MountOp::Bind { target, .. } if target == Path::new("/tmp/work")));
        assert!(tmp.expect("tmp") < work.expect("work"));
    }

    #[test]
    fn dangerous_paths_are_refused() {
        for bad in ["/", "/proc/1", "/dev", "relative", "/a/../etc"] {
            let mut s = spec();
            s.ro_paths = vec![HostPath::unopened(bad)];
            assert!(
                matches!(mount_plan(&s, &merged_usr()), Err(PlanError::BadPath { .. })),
                "{bad} accepted"
            );
        }
    }

    #[test]
    fn the_package_is_read_only_and_executable_at_pkg_and_nothing_else_goes_there() {
        let mut s = spec();
        s.package = Some(HostPath::unopened("/home/u/.cache/mcp-j/v1/run/x/pkg"));
        s.workdir = Workdir::Package;
        let ops = mount_plan(&s, &merged_usr()).expect("plan");
        let binds = binds(&ops);
        assert!(binds.contains(&("/pkg".to_owned(), BindAccess::ReadExec)), "{binds:?}");
        assert!(
            !binds.iter().any(|(p, _)| p.starts_with("/home/u/.cache")),
            "the package's host path is not exposed: {binds:?}"
        );
        assert!(executable_paths(&s, &merged_usr()).contains(&PathBuf::from("/pkg")));
        assert!(!writable_paths(&s).iter().any(|p| p.starts_with("/pkg")));

        for inside in ["/pkg", "/pkg/sub"] {
            let mut s = s.clone();
            s.ro_paths = vec![HostPath::unopened(inside)];
            assert!(
                matches!(mount_plan(&s, &merged_usr()), Err(PlanError::BadPath { .. })),
                "{inside} accepted over the package"
            );
        }
        // Without a package, /pkg is an ordinary path, and not a working directory.
        let mut s = spec();
        s.ro_paths = vec![HostPath::unopened("/pkg")];
        assert!(mount_plan(&s, &merged_usr()).is_ok());
        s.workdir = Workdir::Package;
        assert!(matches!(mount_plan(&s, &merged_usr()), Err(PlanError::BadPath { .. })));
    }

    #[test]
    fn a_path_cannot_be_both_read_only_and_read_write() {
        let mut s = spec();
        s.ro_paths = vec![HostPath::unopened("/data")];
        s.rw_paths = vec![HostPath::unopened("/data")];
        assert_eq!(mount_plan(&s, &merged_usr()), Err(PlanError::Conflict("/data".into())));
    }

    #[test]
    fn the_exec_exception_is_bound_last_and_executable() {
        let mut host = merged_usr();
        host.exec_exception = Some("/home/u/proj/server.sh".into());
        let ops = mount_plan(&spec(), &host).expect("plan");
        assert_eq!(
            ops.last(),
            Some(&MountOp::Bind {
                source: BindSource::Program("/home/u/proj/server.sh".into()),
                target: "/home/u/proj/server.sh".into(),
                access: BindAccess::ReadExec,
                idmap: true,
            })
        );
        assert!(executable_paths(&spec(), &host).contains(&PathBuf::from("/home/u/proj/server.sh")));
    }

    #[test]
    fn writable_and_executable_paths_do_not_overlap_by_default() {
        let s = spec();
        let host = merged_usr();
        let w = writable_paths(&s);
        for x in executable_paths(&s, &host) {
            assert!(
                !w.iter().any(|w| x.starts_with(w)),
                "{} writable and executable",
                x.display()
            );
        }
    }

    #[test]
    fn exec_exception_only_for_programs_in_writable_places() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = std::fs::canonicalize(dir.path()).expect("canonical");
        std::fs::write(root.join("server.sh"), "#!/bin/sh\n").expect("write");
        let mut s = spec();
        s.workdir = Workdir::Host(HostPath::unopened(root.clone()));
        s.program = "./server.sh".into();
        assert_eq!(exec_exception(&s), Some(root.join("server.sh")));
        s.program = "server.sh".into(); // a bare name is looked up in PATH
        assert_eq!(exec_exception(&s), None);
        s.program = "/bin/sh".into(); // not in a writable place
        assert_eq!(exec_exception(&s), None);
        s.workdir = Workdir::Private;
        s.program = "./server.sh".into();
        assert_eq!(exec_exception(&s), None);
    }

    #[test]
    fn covers_become_ops_inside_user_trees_only() {
        let mut s = spec();
        s.covers = vec![
            Cover::Endpoint("/home/u/proj/.git/fsmonitor.ipc".into()),
            Cover::ReadOnly("/home/u/proj/.git".into()),
            Cover::ReadOnly("/home/u/proj".into()), // a root itself: not a cover
            Cover::Endpoint("/opt/tools/run/agent.sock".into()),
            Cover::ReadOnly("/etc/passwd".into()), // outside every user tree
            Cover::ReadOnly("/home/u/proj/../x".into()),
        ];
        assert_eq!(
            cover_ops(&s),
            vec![
                MountOp::ReadOnlyOverItself {
                    path: "/home/u/proj/.git".into()
                },
                MountOp::EmptyFileOver {
                    path: "/opt/tools/run/agent.sock".into()
                },
                MountOp::EmptyFileOver {
                    path: "/home/u/proj/.git/fsmonitor.ipc".into()
                },
            ]
        );
    }
}
