//! Carrying out the mount plan: detached mount trees (`open_tree`, `fsmount`) attached
//! under the new root with `move_mount`, mount points resolved with `openat2` so nothing
//! planted in a host directory can redirect a mount.

use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags, OpenTreeFlags};

use crate::jail::{AtStep, Failure};
use crate::plan::{BindAccess, BindSource, MountOp};
use crate::report::Step;
use crate::sys;

/// Open (as detached clones, with their final mount attributes) every bind source not
/// already opened by the helper. Only fixed system paths are opened here, by name; a
/// user's path was opened in step 4 from its descriptor or not at all.
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
                BindSource::Program(path) => open_program_tree(path)?,
                BindSource::Passed { .. } => {
                    return Err(Failure {
                        step: Step::OpenBindSources,
                        errno: libc::EBADF,
                    });
                }
            };
            sys::mount_setattr(tree.as_fd(), true, bind_attributes(*access)).at(Step::BindMount)?;
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
    .at(Step::OpenBindSources)
}

/// A detached clone of PROG's own file at its canonical path, with no symlink followed on
/// the way (`RESOLVE_NO_SYMLINKS`): ELOOP if one was swapped in since it was resolved.
pub(crate) fn open_program_tree(path: &Path) -> Result<OwnedFd, Failure> {
    let file = rustix::fs::openat2(
        rustix::fs::CWD,
        path,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    )
    .at(Step::OpenBindSources)?;
    open_tree_of(file.as_fd())
}

/// A detached clone of the mount tree at an open descriptor: exactly that directory or
/// file, no lookup by name (`AT_EMPTY_PATH`). The descriptor's mount must be in our mount
/// namespace, and we must be privileged there.
pub(crate) fn open_tree_of(source: BorrowedFd<'_>) -> Result<OwnedFd, Failure> {
    rustix::mount::open_tree(
        source,
        "",
        OpenTreeFlags::OPEN_TREE_CLONE
            | OpenTreeFlags::OPEN_TREE_CLOEXEC
            | OpenTreeFlags::AT_RECURSIVE
            | OpenTreeFlags::AT_EMPTY_PATH,
    )
    .at(Step::OpenBindSources)
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
pub(crate) fn mount_tmpfs(size_bytes: u64, mode: u32, step: Step) -> Result<OwnedFd, Failure> {
    let fs = rustix::mount::fsopen("tmpfs", FsOpenFlags::FSOPEN_CLOEXEC).at(step)?;
    rustix::mount::fsconfig_set_string(fs.as_fd(), "size", size_bytes.to_string()).at(step)?;
    rustix::mount::fsconfig_set_string(fs.as_fd(), "mode", format!("{mode:o}")).at(step)?;
    rustix::mount::fsconfig_set_string(fs.as_fd(), "nr_inodes", "65536").at(step)?;
    rustix::mount::fsconfig_create(fs.as_fd()).at(step)?;
    rustix::mount::fsmount(
        fs.as_fd(),
        FsMountFlags::FSMOUNT_CLOEXEC,
        MountAttrFlags::MOUNT_ATTR_NOSUID | MountAttrFlags::MOUNT_ATTR_NODEV | MountAttrFlags::MOUNT_ATTR_NOEXEC,
    )
    .at(step)
}

/// Carry out one plan step under `root`.
pub(crate) fn apply(root: BorrowedFd<'_>, op: &MountOp, source: Option<OwnedFd>) -> Result<(), Failure> {
    match op {
        MountOp::Dir { path } => {
            open_in_root(root, path, Some(NodeKind::Dir)).at(Step::CreateMountPoint)?;
        }
        MountOp::File { path, contents } => {
            let (parent, name) = parent_in_root(root, path).at(Step::WriteEtcFile)?;
            let fd = rustix::fs::openat(
                parent.as_fd(),
                name.as_path(),
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC | OFlags::NOFOLLOW,
                Mode::from_raw_mode(0o644),
            )
            .at(Step::WriteEtcFile)?;
            std::fs::File::from(fd)
                .write_all(contents.as_bytes())
                .at(Step::WriteEtcFile)?;
        }
        MountOp::Symlink { path, target } => {
            let (parent, name) = parent_in_root(root, path).at(Step::CreateSymlink)?;
            rustix::fs::symlinkat(target.as_path(), parent.as_fd(), name.as_path()).at(Step::CreateSymlink)?;
        }
        MountOp::Tmpfs { path, size_bytes, mode } => {
            let mnt = mount_tmpfs(*size_bytes, *mode, Step::MountTmpfs)?;
            attach(mnt.as_fd(), root, path, NodeKind::Dir, Step::MountTmpfs)?;
        }
        MountOp::Proc { path } => {
            let fs = rustix::mount::fsopen("proc", FsOpenFlags::FSOPEN_CLOEXEC).at(Step::MountProc)?;
            rustix::mount::fsconfig_create(fs.as_fd()).at(Step::MountProc)?;
            let mnt = rustix::mount::fsmount(
                fs.as_fd(),
                FsMountFlags::FSMOUNT_CLOEXEC,
                MountAttrFlags::MOUNT_ATTR_NOSUID
                    | MountAttrFlags::MOUNT_ATTR_NODEV
                    | MountAttrFlags::MOUNT_ATTR_NOEXEC,
            )
            .at(Step::MountProc)?;
            attach(mnt.as_fd(), root, path, NodeKind::Dir, Step::MountProc)?;
            protect_proc(root, path)?;
        }
        MountOp::Bind { target, .. } => {
            let tree = source.ok_or(Failure {
                step: Step::BindMount,
                errno: libc::EBADF,
            })?;
            let stat = rustix::fs::fstat(tree.as_fd()).at(Step::BindMount)?;
            let kind = if rustix::fs::FileType::from_raw_mode(stat.st_mode) == rustix::fs::FileType::Directory {
                NodeKind::Dir
            } else {
                NodeKind::File
            };
            attach(tree.as_fd(), root, target, kind, Step::BindMount)?;
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
        let tree = rustix::mount::open_tree(
            target.as_fd(),
            "",
            OpenTreeFlags::OPEN_TREE_CLONE
                | OpenTreeFlags::OPEN_TREE_CLOEXEC
                | OpenTreeFlags::AT_RECURSIVE
                | OpenTreeFlags::AT_EMPTY_PATH,
        )
        .at(Step::ProtectProc)?;
        sys::mount_setattr(
            tree.as_fd(),
            true,
            sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV | sys::MOUNT_ATTR_NOEXEC,
        )
        .at(Step::ProtectProc)?;
        rustix::mount::move_mount(
            tree.as_fd(),
            "",
            target.as_fd(),
            "",
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
        )
        .at(Step::ProtectProc)?;
    }
    Ok(())
}

/// Attach a detached mount at `path` under `root`, creating the mount point.
fn attach(mnt: BorrowedFd<'_>, root: BorrowedFd<'_>, path: &Path, kind: NodeKind, step: Step) -> Result<(), Failure> {
    let target = open_in_root(root, path, Some(kind)).at(Step::CreateMountPoint)?;
    rustix::mount::move_mount(
        mnt,
        "",
        target.as_fd(),
        "",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    )
    .at(step)
}

#[derive(Clone, Copy, PartialEq, Eq)]
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
    let mut dir = rustix::io::fcntl_dupfd_cloexec(root, 0)?;
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let kind = if last {
            create.unwrap_or(NodeKind::Dir)
        } else {
            NodeKind::Dir
        };
        let flags = OFlags::PATH | OFlags::CLOEXEC | OFlags::NOFOLLOW;
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
    let dir = open_in_root(root, parent, Some(NodeKind::Dir))?;
    // An O_PATH fd cannot be used to create entries; reopen the directory for real.
    let dir = rustix::fs::openat(
        dir.as_fd(),
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    Ok((dir, PathBuf::from(name)))
}
