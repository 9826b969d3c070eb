//! Carrying out the mount plan: detached mount trees (`open_tree`, `fsmount`) attached
//! under the new root with `move_mount`, mount points resolved with `openat2` so nothing
//! planted in a host directory can redirect a mount.

use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags, OpenTreeFlags};

use crate::plan::{BindAccess, BindSource, MountOp};
use crate::report::{AtStep, Failure, Step};
use crate::sys;

/// Open (as detached clones, with their final mount attributes) every bind source not
/// already opened by the helper. Only fixed system paths are opened here, by name; a
/// user's path was opened in step 5 from its descriptor or not at all.
pub(crate) fn open_bind_sources(
    ops: &[MountOp],
    mut opened: Vec<(usize, OwnedFd)>,
) -> Result<Vec<Option<OwnedFd>>, Failure> {
    ops.iter()
        .enumerate()
        .map(|(i, op)| {
            let MountOp::Bind { source, access, .. } = op else {
                return Ok(None);
            };
            if let Some(pos) = opened.iter().position(|(j, _)| *j == i) {
                return Ok(Some(opened.swap_remove(pos).1));
            }
            let tree = match source {
                BindSource::Named(path) => open_tree_clone(path)?,
                BindSource::Program(path) => open_program_tree(path).at(Step::BuildRoot)?,
                BindSource::Passed { .. } => {
                    return Err(Failure {
                        step: Step::BuildRoot,
                        errno: libc::EBADF,
                    });
                }
            };
            sys::mount_setattr(tree.as_fd(), true, bind_attributes(*access)).at(Step::BuildRoot)?;
            Ok(Some(tree))
        })
        .collect()
}

/// A detached clone of the mount tree at a host path, looked up by name.
pub(crate) fn open_tree_clone(source: &Path) -> Result<OwnedFd, Failure> {
    rustix::mount::open_tree(
        rustix::fs::CWD,
        source,
        OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC | OpenTreeFlags::AT_RECURSIVE,
    )
    .at(Step::BuildRoot)
}

/// A detached clone of PROG's own file at its canonical path, with no symlink followed on
/// the way (`RESOLVE_NO_SYMLINKS`): ELOOP if one was swapped in since it was resolved.
/// (The helper uses it too, in step 5: the caller names the step.)
pub(crate) fn open_program_tree(path: &Path) -> rustix::io::Result<OwnedFd> {
    let file = rustix::fs::openat2(
        rustix::fs::CWD,
        path,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    )?;
    open_tree_of(file.as_fd())
}

/// A detached clone of the mount tree at an open descriptor: exactly that directory or
/// file, no lookup by name (`AT_EMPTY_PATH`). The descriptor's mount must be in our mount
/// namespace, and we must be privileged there.
pub(crate) fn open_tree_of(source: BorrowedFd<'_>) -> rustix::io::Result<OwnedFd> {
    rustix::mount::open_tree(
        source,
        "",
        OpenTreeFlags::OPEN_TREE_CLONE
            | OpenTreeFlags::OPEN_TREE_CLOEXEC
            | OpenTreeFlags::AT_RECURSIVE
            | OpenTreeFlags::AT_EMPTY_PATH,
    )
}

/// Mount attributes for each kind of bind.
pub(crate) fn bind_attributes(access: BindAccess) -> u64 {
    use sys::{
        MOUNT_ATTR_NODEV as NODEV, MOUNT_ATTR_NOEXEC as NOEXEC, MOUNT_ATTR_NOSUID as NOSUID,
        MOUNT_ATTR_RDONLY as RDONLY,
    };
    match access {
        BindAccess::ReadExec => RDONLY | NOSUID | NODEV,
        BindAccess::ReadOnly => RDONLY | NOSUID | NODEV | NOEXEC,
        BindAccess::ReadWrite => NOSUID | NODEV | NOEXEC,
        BindAccess::Device => NOSUID | NOEXEC,
    }
}

/// A fresh tmpfs, detached: nosuid, nodev, noexec, bounded in size and inodes.
pub(crate) fn mount_tmpfs(size_bytes: u64, mode: u32) -> Result<OwnedFd, Failure> {
    let fs = rustix::mount::fsopen("tmpfs", FsOpenFlags::FSOPEN_CLOEXEC).at(Step::BuildRoot)?;
    rustix::mount::fsconfig_set_string(fs.as_fd(), "size", size_bytes.to_string()).at(Step::BuildRoot)?;
    rustix::mount::fsconfig_set_string(fs.as_fd(), "mode", format!("{mode:o}")).at(Step::BuildRoot)?;
    rustix::mount::fsconfig_set_string(fs.as_fd(), "nr_inodes", "65536").at(Step::BuildRoot)?;
    rustix::mount::fsconfig_create(fs.as_fd()).at(Step::BuildRoot)?;
    rustix::mount::fsmount(
        fs.as_fd(),
        FsMountFlags::FSMOUNT_CLOEXEC,
        MountAttrFlags::MOUNT_ATTR_NOSUID | MountAttrFlags::MOUNT_ATTR_NODEV | MountAttrFlags::MOUNT_ATTR_NOEXEC,
    )
    .at(Step::BuildRoot)
}

/// Carry out one plan step under `root`.
pub(crate) fn apply(root: BorrowedFd<'_>, op: &MountOp, source: Option<OwnedFd>) -> Result<(), Failure> {
    match op {
        MountOp::Dir { path } => {
            open_in_root(root, path, Some(NodeKind::Dir)).at(Step::BuildRoot)?;
        }
        MountOp::File { path, contents } => {
            let (parent, name) = parent_in_root(root, path).at(Step::BuildRoot)?;
            let fd = rustix::fs::openat(
                parent.as_fd(),
                name.as_path(),
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC | OFlags::NOFOLLOW,
                Mode::from_raw_mode(0o644),
            )
            .at(Step::BuildRoot)?;
            std::fs::File::from(fd)
                .write_all(contents.as_bytes())
                .at(Step::BuildRoot)?;
        }
        MountOp::Symlink { path, target } => {
            let (parent, name) = parent_in_root(root, path).at(Step::BuildRoot)?;
            rustix::fs::symlinkat(target.as_path(), parent.as_fd(), name.as_path()).at(Step::BuildRoot)?;
        }
        MountOp::Tmpfs { path, size_bytes, mode } => {
            let mnt = mount_tmpfs(*size_bytes, *mode)?;
            attach(mnt.as_fd(), root, path, NodeKind::Dir)?;
        }
        MountOp::Proc { path } => {
            let fs = rustix::mount::fsopen("proc", FsOpenFlags::FSOPEN_CLOEXEC).at(Step::BuildRoot)?;
            rustix::mount::fsconfig_create(fs.as_fd()).at(Step::BuildRoot)?;
            let mnt = rustix::mount::fsmount(
                fs.as_fd(),
                FsMountFlags::FSMOUNT_CLOEXEC,
                MountAttrFlags::MOUNT_ATTR_NOSUID
                    | MountAttrFlags::MOUNT_ATTR_NODEV
                    | MountAttrFlags::MOUNT_ATTR_NOEXEC,
            )
            .at(Step::BuildRoot)?;
            attach(mnt.as_fd(), root, path, NodeKind::Dir)?;
            protect_proc(root, path)?;
            mask_proc(root, path)?;
        }
        MountOp::ReadOnlyOverItself { path } => read_only_over_itself(root, path)?,
        MountOp::EmptyFileOver { path } => empty_file_over(root, path)?,
        MountOp::Bind { target, .. } => {
            let tree = source.ok_or(Failure {
                step: Step::BuildRoot,
                errno: libc::EBADF,
            })?;
            let stat = rustix::fs::fstat(tree.as_fd()).at(Step::BuildRoot)?;
            let kind = if rustix::fs::FileType::from_raw_mode(stat.st_mode) == rustix::fs::FileType::Directory {
                NodeKind::Dir
            } else {
                NodeKind::File
            };
            attach(tree.as_fd(), root, target, kind)?;
        }
    }
    Ok(())
}

/// Parts of procfs that configure the whole kernel are bound read-only over themselves
/// (the kernel refuses most writes from a user namespace anyway; this is the second wall).
fn protect_proc(root: BorrowedFd<'_>, proc_path: &Path) -> Result<(), Failure> {
    for sub in ["sys", "sysrq-trigger", "irq", "bus", "fs"] {
        let path = proc_path.join(sub);
        let Ok(target) = open_in_root(root, &path, None) else {
            continue; // not on this kernel
        };
        rebind_read_only(target.as_fd(), true)?;
    }
    Ok(())
}

/// Host facts in procfs that a jail has no need for: fingerprints of the machine
/// (`cmdline`, `boot_id`, disks, buses, filesystems) and kernel internals. The list of
/// Docker/containerd's default masked paths, plus the host leaks of issue 7. Each file is
/// covered by an empty read-only file, each directory by an empty read-only tmpfs.
pub(crate) const PROC_MASKED_FILES: &[&str] = &[
    "cmdline",
    "sys/kernel/random/boot_id",
    "partitions",
    "diskstats",
    "swaps",
    "kcore",
    "kallsyms",
    "kmsg",
    "keys",
    "key-users",
    "timer_list",
    "timer_stats",
    "sched_debug",
    "latency_stats",
    "interrupts",
    "modules",
    "iomem",
    "ioports",
    "vmallocinfo",
    "slabinfo",
    "config.gz",
];
/// See [`PROC_MASKED_FILES`].
pub(crate) const PROC_MASKED_DIRS: &[&str] = &["bus", "fs", "scsi", "acpi", "asound", "driver"];

/// Where the empty file that masks and covers are bound from lives on the root tmpfs
/// while the root is built; removed before `pivot_root` ([`apply_covers`]).
const EMPTY_FILE: &str = "/.mcp-j-empty";

/// Mask [`PROC_MASKED_FILES`] and [`PROC_MASKED_DIRS`] (those this kernel has).
fn mask_proc(root: BorrowedFd<'_>, proc_path: &Path) -> Result<(), Failure> {
    for file in PROC_MASKED_FILES {
        empty_file_over(root, &proc_path.join(file))?;
    }
    for dir in PROC_MASKED_DIRS {
        let Some(target) = existing_target(root, &proc_path.join(dir)).at(Step::BuildRoot)? else {
            continue;
        };
        let mnt = mount_tmpfs(4096, 0o555)?;
        sys::mount_setattr(mnt.as_fd(), false, read_only_attributes()).at(Step::BuildRoot)?;
        move_onto(mnt.as_fd(), target.as_fd())?;
    }
    Ok(())
}

fn read_only_attributes() -> u64 {
    sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV | sys::MOUNT_ATTR_NOEXEC
}

/// The path under `root`, if it is still there as something other than a symlink (an
/// O_PATH fd). A path that vanished, or whose components turned into symlinks, since the
/// host was surveyed is `None`: there is nothing left there to cover.
fn existing_target(root: BorrowedFd<'_>, path: &Path) -> std::io::Result<Option<OwnedFd>> {
    match open_in_root(root, path, None) {
        Ok(fd) => Ok(Some(fd)),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::ENOENT | libc::ELOOP | libc::ENOTDIR | libc::EXDEV | libc::EACCES)
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

fn move_onto(mnt: BorrowedFd<'_>, target: BorrowedFd<'_>) -> Result<(), Failure> {
    rustix::mount::move_mount(
        mnt,
        "",
        target,
        "",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    )
    .at(Step::BuildRoot)
}

/// Bind `path` read-only over itself (as [`protect_proc`] does), in the jail's own mount
/// namespace. Only the top mount becomes read-only: a path the user exposed read-write
/// inside it is a mount of its own and stays writable.
fn read_only_over_itself(root: BorrowedFd<'_>, path: &Path) -> Result<(), Failure> {
    let Some(target) = existing_target(root, path).at(Step::BuildRoot)? else {
        return Ok(());
    };
    rebind_read_only(target.as_fd(), false)
}

/// Clone the mount tree at `target` and move it back on top of itself read-only (nosuid,
/// nodev, noexec): `recursive` makes every mount below read-only too, else only the top
/// one (a read-write mount of its own inside it stays writable).
fn rebind_read_only(target: BorrowedFd<'_>, recursive: bool) -> Result<(), Failure> {
    let tree = rustix::mount::open_tree(
        target,
        "",
        OpenTreeFlags::OPEN_TREE_CLONE
            | OpenTreeFlags::OPEN_TREE_CLOEXEC
            | OpenTreeFlags::AT_RECURSIVE
            | OpenTreeFlags::AT_EMPTY_PATH,
    )
    .at(Step::BuildRoot)?;
    sys::mount_setattr(tree.as_fd(), recursive, read_only_attributes()).at(Step::BuildRoot)?;
    move_onto(tree.as_fd(), target)
}

/// Bind an empty read-only file over `path` (a file, socket or FIFO; a directory there
/// now is left alone: it is no longer what was surveyed).
fn empty_file_over(root: BorrowedFd<'_>, path: &Path) -> Result<(), Failure> {
    let Some(target) = existing_target(root, path).at(Step::BuildRoot)? else {
        return Ok(());
    };
    let stat = rustix::fs::fstat(target.as_fd()).at(Step::BuildRoot)?;
    if rustix::fs::FileType::from_raw_mode(stat.st_mode) == rustix::fs::FileType::Directory {
        return Ok(());
    }
    let empty = open_in_root(root, Path::new(EMPTY_FILE), Some(NodeKind::File)).at(Step::BuildRoot)?;
    let tree = rustix::mount::open_tree(
        empty.as_fd(),
        "",
        OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC | OpenTreeFlags::AT_EMPTY_PATH,
    )
    .at(Step::BuildRoot)?;
    sys::mount_setattr(tree.as_fd(), false, read_only_attributes()).at(Step::BuildRoot)?;
    move_onto(tree.as_fd(), target.as_fd())
}

/// Apply the covers of the user's trees ([`crate::plan::cover_ops`]) after every bind,
/// then remove the empty file the masks and covers are bound from (they keep it alive;
/// the jail's root does not show it).
pub(crate) fn apply_covers(root: BorrowedFd<'_>, covers: &[MountOp]) -> Result<(), Failure> {
    for op in covers {
        apply(root, op, None)?;
    }
    match rustix::fs::unlinkat(root, &EMPTY_FILE[1..], rustix::fs::AtFlags::empty()) {
        Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(e) => Err(e).at(Step::BuildRoot),
    }
}

/// Attach a detached mount at `path` under `root`, creating the mount point.
fn attach(mnt: BorrowedFd<'_>, root: BorrowedFd<'_>, path: &Path, kind: NodeKind) -> Result<(), Failure> {
    let target = open_in_root(root, path, Some(kind)).at(Step::BuildRoot)?;
    rustix::mount::move_mount(
        mnt,
        "",
        target.as_fd(),
        "",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    )
    .at(Step::BuildRoot)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NodeKind {
    Dir,
    File,
}

/// Resolve an absolute jail path under `root` one component at a time, never following a
/// symlink and never leaving `root` (`openat2` with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS):
/// a link planted in a host directory by an earlier run cannot redirect a mount. With
/// `create`, missing components are made (directories; the last one as `kind`).
fn open_in_root(root: BorrowedFd<'_>, path: &Path, create: Option<NodeKind>) -> std::io::Result<OwnedFd> {
    let parts: Vec<&std::ffi::OsStr> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(p) => Some(p),
            _ => None,
        })
        .collect();
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    let flags = OFlags::PATH | OFlags::CLOEXEC | OFlags::NOFOLLOW;
    // The common case, a path that is all there, in one call: the resolve flags hold for
    // every component. Only a missing one that is to be made takes the walk below.
    if !parts.is_empty() {
        let whole: PathBuf = parts.iter().collect();
        match rustix::fs::openat2(root, &whole, flags, Mode::empty(), resolve) {
            Ok(fd) => return Ok(fd),
            Err(rustix::io::Errno::NOENT) if create.is_some() => {}
            Err(e) => return Err(e.into()),
        }
    }
    let mut dir = rustix::io::fcntl_dupfd_cloexec(root, 0)?;
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let kind = if last {
            create.unwrap_or(NodeKind::Dir)
        } else {
            NodeKind::Dir
        };
        let open = |d: &OwnedFd| rustix::fs::openat2(d.as_fd(), *part, flags, Mode::empty(), resolve);
        dir = match open(&dir) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) if create.is_some() => {
                match kind {
                    NodeKind::Dir => rustix::fs::mkdirat(dir.as_fd(), *part, Mode::from_raw_mode(0o755))?,
                    NodeKind::File => {
                        rustix::fs::openat(
                            dir.as_fd(),
                            *part,
                            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC | OFlags::NOFOLLOW,
                            Mode::from_raw_mode(0o644),
                        )?;
                    }
                }
                open(&dir)?
            }
            Err(e) => return Err(e.into()),
        };
    }
    Ok(dir)
}

/// The parent directory of `path` (created as needed) and the final name.
fn parent_in_root(root: BorrowedFd<'_>, path: &Path) -> std::io::Result<(OwnedFd, PathBuf)> {
    let parent = path.parent().unwrap_or(Path::new("/"));
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    // An O_PATH descriptor serves as the directory of `*at` calls that create entries (a
    // symlink's fails them with ENOTDIR).
    let dir = open_in_root(root, parent, Some(NodeKind::Dir))?;
    Ok((dir, PathBuf::from(name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root_of(dir: &tempfile::TempDir) -> OwnedFd {
        rustix::fs::open(
            dir.path(),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .unwrap()
    }

    fn errno(result: std::io::Result<OwnedFd>) -> Option<i32> {
        result.err().and_then(|e| e.raw_os_error())
    }

    #[test]
    fn a_path_that_is_there_opens_in_one_piece() {
        let tmp = tempfile::TempDir::new().unwrap();
        std::fs::create_dir_all(tmp.path().join("usr/lib/deep")).unwrap();
        let root = root_of(&tmp);
        let fd = open_in_root(root.as_fd(), Path::new("/usr/lib/deep"), None).unwrap();
        let opened = rustix::fs::fstat(&fd).unwrap();
        let expected = std::fs::metadata(tmp.path().join("usr/lib/deep")).unwrap();
        assert_eq!(opened.st_ino, std::os::unix::fs::MetadataExt::ino(&expected));
        assert_eq!(
            errno(open_in_root(root.as_fd(), Path::new("/usr/missing"), None)),
            Some(libc::ENOENT)
        );
    }

    #[test]
    fn missing_components_are_made_only_when_asked() {
        let tmp = tempfile::TempDir::new().unwrap();
        std::fs::create_dir(tmp.path().join("etc")).unwrap();
        let root = root_of(&tmp);
        open_in_root(root.as_fd(), Path::new("/etc/ssl/certs"), Some(NodeKind::Dir)).unwrap();
        assert!(tmp.path().join("etc/ssl/certs").is_dir());
        open_in_root(root.as_fd(), Path::new("/etc/ssl/cert.pem"), Some(NodeKind::File)).unwrap();
        assert!(tmp.path().join("etc/ssl/cert.pem").is_file());
    }

    #[test]
    fn a_symlink_in_any_component_is_refused_never_followed() {
        let tmp = tempfile::TempDir::new().unwrap();
        let outside = tempfile::TempDir::new().unwrap();
        std::fs::create_dir_all(outside.path().join("target")).unwrap();
        std::fs::create_dir(tmp.path().join("dir")).unwrap();
        std::os::unix::fs::symlink(outside.path(), tmp.path().join("dir/link")).unwrap();
        std::os::unix::fs::symlink("../..", tmp.path().join("up")).unwrap();
        let root = root_of(&tmp);
        for create in [None, Some(NodeKind::Dir), Some(NodeKind::File)] {
            // A final symlink is opened as the link itself (O_NOFOLLOW), never its target.
            let last = open_in_root(root.as_fd(), Path::new("/dir/link"), create).unwrap();
            let kind = rustix::fs::FileType::from_raw_mode(rustix::fs::fstat(&last).unwrap().st_mode);
            assert_eq!(kind, rustix::fs::FileType::Symlink);
            for path in ["/dir/link/target", "/dir/link/new/deeper", "/up/x"] {
                let got = errno(open_in_root(root.as_fd(), Path::new(path), create));
                assert!(
                    matches!(got, Some(libc::ELOOP | libc::EXDEV)),
                    "{path} with {create:?}: {got:?}"
                );
            }
        }
        assert!(
            !outside.path().join("target/new").exists(),
            "nothing was made outside the root"
        );
        assert!(
            !outside.path().join("new").exists(),
            "nothing was made outside the root"
        );
    }
}
