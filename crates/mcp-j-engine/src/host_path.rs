//! A host path the user exposes (`--ro`, `--rw`, the workdir), resolved once, on the host.
//!
//! The path is opened with `O_PATH | O_NOFOLLOW`: the kernel resolves every component but
//! the last as it always does (`..` and symlinks on the way work), and a last component
//! that is a symlink is refused: a jail that can write the directory holding it may have
//! planted the link. Every check (kind, owner, system directory) is made on the
//! descriptor, the jail-side path is the descriptor's real path, and the descriptor itself
//! travels to the jail helper, which mounts exactly that directory (`open_tree` of the
//! descriptor): nothing looks the path up by name again between the check and the mount.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{FileType, Mode, OFlags};
use serde::{Deserialize, Serialize};

/// A resolved host path and (on the supervisor's side) its open descriptor.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostPath {
    /// The real path of the descriptor: where it is on the host, and where the jail sees it.
    pub path: PathBuf,
    /// What the descriptor was when it was opened (supervisor's side only).
    #[serde(skip)]
    info: Option<PathInfo>,
    /// The open `O_PATH` descriptor (supervisor's side only).
    #[serde(skip)]
    fd: Option<Arc<OwnedFd>>,
    /// The descriptor number the helper finds it at; set by the supervisor when it passes
    /// the descriptor.
    pub(crate) helper_fd: Option<RawFd>,
}

/// What [`HostPath::open`] found, from `fstat` of the descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathInfo {
    /// A directory (else a file, device, socket, …).
    pub is_dir: bool,
    /// Owner uid.
    pub uid: u32,
    /// Mode bits (permissions, sticky bit).
    pub mode: u32,
}

/// Why a path cannot be exposed.
#[derive(Debug, thiserror::Error)]
pub enum HostPathError {
    /// It cannot be opened (missing, no permission on the way, …).
    #[error("cannot open it: {0}")]
    Open(#[source] std::io::Error),
    /// Its last component is a symlink.
    #[error("it is a symlink to `{}`", .target.display())]
    Symlink {
        /// Where the link leads (fully resolved when it resolves, else as written).
        target: PathBuf,
    },
    /// Its real path cannot be told (deleted, or outside our root).
    #[error("its real path cannot be found")]
    NoRealPath,
}

impl PartialEq for HostPath {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path && self.helper_fd == other.helper_fd
    }
}

impl Eq for HostPath {}

impl HostPath {
    /// Open `path` (made absolute against the current directory) as described in the
    /// module documentation.
    pub fn open(path: &Path) -> Result<HostPath, HostPathError> {
        let absolute = std::path::absolute(path).map_err(HostPathError::Open)?;
        Self::open_as(&absolute, &absolute)
    }

    /// The current directory itself (`.`, never looked up by its name).
    pub fn open_current_dir() -> Result<HostPath, HostPathError> {
        Self::open_as(Path::new("."), Path::new("."))
    }

    fn open_as(open: &Path, absolute: &Path) -> Result<HostPath, HostPathError> {
        let fd = rustix::fs::open(open, OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| HostPathError::Open(e.into()))?;
        let stat = rustix::fs::fstat(&fd).map_err(|e| HostPathError::Open(e.into()))?;
        let kind = FileType::from_raw_mode(stat.st_mode);
        if kind == FileType::Symlink {
            // For the message only: where the link leads now.
            let target = std::fs::canonicalize(absolute)
                .or_else(|_| {
                    rustix::fs::readlinkat(&fd, "", Vec::new()).map(|t| PathBuf::from(t.to_string_lossy().into_owned()))
                })
                .unwrap_or_else(|_| PathBuf::from("?"));
            return Err(HostPathError::Symlink { target });
        }
        let real = real_path(fd.as_fd()).ok_or(HostPathError::NoRealPath)?;
        Ok(HostPath {
            path: real,
            info: Some(PathInfo {
                is_dir: kind == FileType::Directory,
                uid: stat.st_uid,
                mode: stat.st_mode & 0o7777,
            }),
            fd: Some(Arc::new(fd)),
            helper_fd: None,
        })
    }

    /// A path with no descriptor (plans in tests, specs read back in the helper).
    pub fn unopened(path: impl Into<PathBuf>) -> HostPath {
        HostPath {
            path: path.into(),
            info: None,
            fd: None,
            helper_fd: None,
        }
    }

    /// What the descriptor was when it was opened; `None` for [`HostPath::unopened`].
    pub fn info(&self) -> Option<PathInfo> {
        self.info
    }

    /// The open descriptor, on the supervisor's side.
    pub(crate) fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.fd.as_deref().map(|fd| fd.as_fd())
    }
}

/// The path `/proc/self/fd/N` names: the descriptor's real path, if it has one.
fn real_path(fd: BorrowedFd<'_>) -> Option<PathBuf> {
    use std::os::fd::AsRawFd;
    let link = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).ok()?;
    let deleted = link.as_os_str().as_encoded_bytes().ends_with(b" (deleted)");
    (link.is_absolute() && !deleted).then_some(link)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_last_symlink_is_refused_with_its_target_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = std::fs::canonicalize(dir.path()).expect("canonical");
        std::fs::create_dir(root.join("target")).expect("mkdir");
        std::os::unix::fs::symlink(root.join("target"), root.join("link")).expect("symlink");
        match HostPath::open(&root.join("link")) {
            Err(HostPathError::Symlink { target }) => assert_eq!(target, root.join("target")),
            other => panic!("a final symlink was accepted: {other:?}"),
        }
        // A dangling link is refused too, naming what it points at.
        std::os::unix::fs::symlink("/nonexistent/x", root.join("dangling")).expect("symlink");
        match HostPath::open(&root.join("dangling")) {
            Err(HostPathError::Symlink { target }) => assert_eq!(target, Path::new("/nonexistent/x")),
            other => panic!("a dangling final symlink was accepted: {other:?}"),
        }
    }

    #[test]
    fn symlinks_and_dotdot_on_the_way_resolve_to_the_real_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = std::fs::canonicalize(dir.path()).expect("canonical");
        std::fs::create_dir_all(root.join("a/b")).expect("mkdir");
        std::fs::create_dir(root.join("c")).expect("mkdir");
        std::os::unix::fs::symlink(root.join("a"), root.join("via")).expect("symlink");
        let p = HostPath::open(&root.join("via/b")).expect("link on the way");
        assert_eq!(p.path, root.join("a/b"));
        assert!(p.info().expect("info").is_dir);
        let p = HostPath::open(&root.join("a/b/../../c")).expect("dotdot");
        assert_eq!(p.path, root.join("c"));
        std::fs::write(root.join("c/f"), "x").expect("write");
        let p = HostPath::open(&root.join("c/f")).expect("file");
        assert!(!p.info().expect("info").is_dir);
        assert!(matches!(
            HostPath::open(&root.join("missing")),
            Err(HostPathError::Open(_))
        ));
    }

    #[test]
    fn the_descriptor_stays_on_the_directory_it_opened() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = std::fs::canonicalize(dir.path()).expect("canonical");
        std::fs::create_dir(root.join("real")).expect("mkdir");
        let p = HostPath::open(&root.join("real")).expect("open");
        // Swap the name for a symlink: the descriptor still means the directory.
        std::fs::rename(root.join("real"), root.join("moved")).expect("rename");
        std::os::unix::fs::symlink("/", root.join("real")).expect("symlink");
        let fd = p.fd().expect("fd");
        assert_eq!(real_path(fd), Some(root.join("moved")));
        // The spec crosses to the helper without the descriptor.
        let back: HostPath = serde_json::from_str(&serde_json::to_string(&p).expect("json")).expect("parse");
        assert_eq!(back.path, p.path);
        assert!(back.fd().is_none() && back.info().is_none());
    }
}
