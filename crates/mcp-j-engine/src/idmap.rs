//! User-namespace id maps, and the idmapped mounts a root caller's own paths get.
//!
//! The helper writes the jail's maps from outside. An unprivileged caller may map only
//! its own uid and gid. A root caller's jail maps to an unprivileged host id instead (see
//! [`crate::host_ids`]), and the user's read-write paths are idmapped so that host root's
//! files there behave as the jail user's.
//!
//! Also here: step 5, opening the mount trees of the user's paths from the descriptors the
//! supervisor passed ([`open_user_trees`]).

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use rustix::mount::OpenTreeFlags;
use rustix::thread::UnshareFlags;

use crate::plan::{BindSource, MountOp};
use crate::report::{AtStep, Failure, Step};
use crate::rootfs::{bind_attributes, open_program_tree, open_tree_of};
use crate::sys::{self, Forked};

/// The uid and gid maps of a user namespace.
pub(crate) struct IdMaps {
    pub(crate) uid: String,
    pub(crate) gid: String,
}

impl IdMaps {
    /// Write them for the process at `proc_dir` (`/proc/self`, `/proc/PID`). `setgroups`
    /// is denied first: the jail never changes its groups.
    pub(crate) fn write(&self, proc_dir: &str) -> std::io::Result<()> {
        std::fs::write(format!("{proc_dir}/setgroups"), "deny")?;
        std::fs::write(format!("{proc_dir}/uid_map"), &self.uid)?;
        std::fs::write(format!("{proc_dir}/gid_map"), &self.gid)
    }
}

/// A throwaway user namespace mapping host root to the jail's host ids: the idmapping for
/// the user's paths, so that files of host root appear as the jail user's and files the
/// jail creates belong to host root.
fn idmapping_userns(jail_host_uid: u32, jail_host_gid: u32) -> Result<OwnedFd, Failure> {
    let (ready_read, ready_write) =
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).at(Step::OpenUserPaths)?;
    let (hold_read, hold_write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).at(Step::OpenUserPaths)?;
    match sys::fork().at(Step::OpenUserPaths)? {
        Forked::Child => {
            drop(ready_read);
            drop(hold_write);
            if sys::unshare_namespaces(UnshareFlags::NEWUSER).is_err() {
                sys::exit_now(1);
            }
            let _ = std::fs::File::from(ready_write).write_all(b"1");
            // Wait until the parent has opened our namespace.
            let _ = std::fs::File::from(hold_read).read(&mut [0u8; 1]);
            sys::exit_now(0)
        }
        Forked::Parent(pid) => {
            drop(ready_write);
            drop(hold_read);
            let mut ready = [0u8; 1];
            let result = (|| -> std::io::Result<OwnedFd> {
                std::fs::File::from(ready_read).read_exact(&mut ready)?;
                let maps = IdMaps {
                    uid: format!("0 {jail_host_uid} 1\n"),
                    gid: format!("0 {jail_host_gid} 1\n"),
                };
                maps.write(&format!("/proc/{pid}"))?;
                Ok(std::fs::File::open(format!("/proc/{pid}/ns/user"))?.into())
            })();
            drop(hold_write);
            let _ = sys::wait_blocking(pid);
            result.at(Step::OpenUserPaths)
        }
    }
}

/// Step 5: the tree of every path the user exposed, opened in the helper as a detached
/// mount with its final attributes, from the descriptor the supervisor passed (`passed`:
/// `(number, descriptor)`), never by name.
///
/// A root caller (`root_ids`: the jail's host uid and gid) clones each descriptor's mount
/// directly, and the read-write ones (and PROG's own file, [`BindSource::Program`]) become
/// idmapped mounts. A filesystem that cannot be idmapped is bound plainly: host
/// root's files then appear as nobody's, which is less access, never more. An
/// unprivileged caller cannot clone a mount of the host's namespace: a throwaway child
/// does it from a namespace of its own ([`clone_tree_unprivileged`]).
pub(crate) fn open_user_trees(
    ops: &[MountOp],
    passed: &[(RawFd, OwnedFd)],
    root_ids: Option<(u32, u32)>,
) -> Result<Vec<(usize, OwnedFd)>, Failure> {
    let mut userns: Option<OwnedFd> = None;
    let mut trees = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        let MountOp::Bind {
            source, access, idmap, ..
        } = op
        else {
            continue;
        };
        let attrs = bind_attributes(*access);
        let open: Box<dyn Fn() -> rustix::io::Result<OwnedFd>> = match source {
            BindSource::Passed { helper_fd } => {
                let fd = helper_fd
                    .and_then(|n| passed.iter().find(|(m, _)| *m == n))
                    .map(|(_, fd)| fd.as_fd())
                    .ok_or(Failure {
                        step: Step::OpenUserPaths,
                        errno: libc::EBADF,
                    })?;
                if root_ids.is_none() {
                    trees.push((i, clone_tree_unprivileged(fd, attrs)?));
                    continue;
                }
                Box::new(move || open_tree_of(fd))
            }
            BindSource::Program(path) if *idmap && root_ids.is_some() => Box::new(move || open_program_tree(path)),
            BindSource::Named(_) | BindSource::Program(_) => continue,
        };
        let tree = open().at(Step::OpenUserPaths)?;
        let mapping = match (root_ids, idmap) {
            (Some((uid, gid)), true) => {
                if userns.is_none() {
                    userns = Some(idmapping_userns(uid, gid)?);
                }
                userns.as_ref()
            }
            _ => None,
        };
        let Some(mapping) = mapping else {
            sys::mount_setattr(tree.as_fd(), true, attrs).at(Step::OpenUserPaths)?;
            trees.push((i, tree));
            continue;
        };
        match sys::mount_setattr_idmapped(tree.as_fd(), attrs, mapping.as_fd()) {
            Ok(()) => trees.push((i, tree)),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                let tree = open().at(Step::OpenUserPaths)?;
                sys::mount_setattr(tree.as_fd(), true, attrs).at(Step::OpenUserPaths)?;
                trees.push((i, tree));
            }
            Err(e) => return Err(e).at(Step::OpenUserPaths),
        }
    }
    Ok(trees)
}

/// A detached clone of the mount tree at the (host) descriptor `source`, made by a
/// throwaway child for an unprivileged caller, with `attrs` set.
///
/// `open_tree(OPEN_TREE_CLONE)` only clones mounts of the caller's own mount namespace,
/// and an unprivileged caller may only clone in a namespace it owns. The child makes
/// `source` its working directory and then unshares a user and mount namespace: the kernel
/// moves the working directory onto the copy of its mount in the new namespace, the same
/// directory, no name involved, and the child clones that. A file cannot be a working
/// directory: the child opens its real path in the new namespace with no symlink allowed
/// anywhere and checks it is the very inode it was passed (device and inode number), or
/// fails with ESTALE. The tree is sent back over a socket; a failure is the child's exit
/// code (an errno).
fn clone_tree_unprivileged(source: BorrowedFd<'_>, attrs: u64) -> Result<OwnedFd, Failure> {
    let step = Step::OpenUserPaths;
    let (ours, theirs) = rustix::net::socketpair(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::SEQPACKET,
        rustix::net::SocketFlags::CLOEXEC,
        None,
    )
    .at(step)?;
    match sys::fork().at(step)? {
        Forked::Child => {
            drop(ours);
            let code = match clone_in_own_namespace(source, attrs) {
                Ok(tree) => match sys::send_fd(theirs.as_fd(), tree.as_fd()) {
                    Ok(()) => 0,
                    Err(e) => e.raw_os_error().unwrap_or(libc::EIO),
                },
                Err(errno) => errno,
            };
            sys::exit_now(code)
        }
        Forked::Parent(pid) => {
            drop(theirs);
            let tree = sys::receive_fd(ours.as_fd());
            let status = sys::wait_blocking(pid).at(step)?;
            match (tree, status) {
                (Some(tree), sys::ChildStatus::Exited(0)) => Ok(tree),
                (_, sys::ChildStatus::Exited(errno)) if errno != 0 => Err(Failure { step, errno }),
                _ => Err(Failure { step, errno: libc::EIO }),
            }
        }
    }
}

/// The child's half of [`clone_tree_unprivileged`]; an errno on failure.
fn clone_in_own_namespace(source: BorrowedFd<'_>, attrs: u64) -> Result<OwnedFd, i32> {
    use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};
    let errno = |e: rustix::io::Errno| e.raw_os_error();
    let io_errno = |e: std::io::Error| e.raw_os_error().unwrap_or(libc::EIO);
    let stat = rustix::fs::fstat(source).map_err(errno)?;
    let clone_flags = OpenTreeFlags::OPEN_TREE_CLONE
        | OpenTreeFlags::OPEN_TREE_CLOEXEC
        | OpenTreeFlags::AT_RECURSIVE
        | OpenTreeFlags::AT_EMPTY_PATH;
    let tree = if FileType::from_raw_mode(stat.st_mode) == FileType::Directory {
        rustix::process::fchdir(source).map_err(errno)?;
        sys::unshare_namespaces(UnshareFlags::NEWUSER | UnshareFlags::NEWNS).map_err(io_errno)?;
        // AT_EMPTY_PATH with AT_FDCWD: the working directory itself.
        rustix::mount::open_tree(rustix::fs::CWD, "", clone_flags).map_err(errno)?
    } else {
        let real = std::fs::read_link(format!("/proc/self/fd/{}", source.as_raw_fd())).map_err(io_errno)?;
        sys::unshare_namespaces(UnshareFlags::NEWUSER | UnshareFlags::NEWNS).map_err(io_errno)?;
        let file = rustix::fs::openat2(
            rustix::fs::CWD,
            &real,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
        )
        .map_err(errno)?;
        let found = rustix::fs::fstat(&file).map_err(errno)?;
        if (found.st_dev, found.st_ino) != (stat.st_dev, stat.st_ino) {
            return Err(libc::ESTALE);
        }
        rustix::mount::open_tree(&file, "", clone_flags).map_err(errno)?
    };
    sys::mount_setattr(tree.as_fd(), true, attrs).map_err(io_errno)?;
    Ok(tree)
}
