//! User-namespace id maps, and the idmapped mounts a root caller's own paths get.
//!
//! The helper writes the jail's maps from outside. An unprivileged caller may map only
//! its own uid and gid. A root caller's jail maps to an unprivileged host id instead (see
//! [`crate::host_ids`]), and the user's own paths are idmapped so
//! that host root's files there behave as the jail user's.

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};

use rustix::thread::UnshareFlags;

use crate::jail::{AtStep, Failure};
use crate::plan::MountOp;
use crate::report::Step;
use crate::rootfs::{bind_attributes, open_tree_clone};
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
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).at(Step::OpenBindSources)?;
    let (hold_read, hold_write) =
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).at(Step::OpenBindSources)?;
    match sys::fork().at(Step::OpenBindSources)? {
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
            result.at(Step::OpenBindSources)
        }
    }
}

/// For a root caller: every bind of a user path, opened as a detached idmapped tree with
/// its final attributes. A filesystem that cannot be idmapped is bound plainly: host
/// root's files then appear as nobody's, which is less access, never more.
pub(crate) fn open_idmapped_user_paths(
    ops: &[MountOp],
    jail_host_uid: u32,
    jail_host_gid: u32,
) -> Result<Vec<(usize, OwnedFd)>, Failure> {
    let user_binds: Vec<usize> = ops
        .iter()
        .enumerate()
        .filter(|(_, op)| matches!(op, MountOp::Bind { user_path: true, .. }))
        .map(|(i, _)| i)
        .collect();
    if user_binds.is_empty() {
        return Ok(Vec::new());
    }
    let userns = idmapping_userns(jail_host_uid, jail_host_gid)?;
    let mut trees = Vec::new();
    for i in user_binds {
        let MountOp::Bind { source, access, .. } = &ops[i] else {
            continue;
        };
        let tree = open_tree_clone(source)?;
        let attrs = bind_attributes(*access);
        match sys::mount_setattr_idmapped(tree.as_fd(), attrs, userns.as_fd()) {
            Ok(()) => trees.push((i, tree)),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                let tree = open_tree_clone(source)?;
                sys::mount_setattr(tree.as_fd(), true, attrs).at(Step::BindMount)?;
                trees.push((i, tree));
            }
            Err(e) => return Err(e).at(Step::BindMount),
        }
    }
    Ok(trees)
}
