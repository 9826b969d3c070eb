//! Unpacking a bundle (`.tar.gz`) in the only shapes a bundle may take (INTERFACE.md,
//! *Packages*): regular files and directories, under caps, into a fresh directory next to the
//! destination that is renamed into place only when every entry was accepted and written.
//!
//! Every entry is checked here, one by one, before anything is written for it (the `tar`
//! crate only parses; its own `unpack` is never called): the path (no absolute path, no `..`,
//! UTF-8, bounded length and depth, not twice, not through a file), the type (file or
//! directory; links, devices, fifos and everything else refused) and the sizes (a file, the
//! total, the entry count). The decompressed stream itself is capped while it streams, so a
//! gzip bomb stops at the cap instead of after it.
//!
//! Writing never follows a link on the host: the fresh directory is opened once, and every
//! path below it is reached one component at a time with `O_NOFOLLOW`, files created with
//! `O_CREAT | O_EXCL`. Modes are ours, not the archive's: directories 0755, files 0755 when
//! the archive gave any executable bit and 0644 otherwise (no setuid, setgid, sticky or
//! group/world write). Archive mtimes and owners are ignored.

use std::cell::Cell;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use rustix::fs::{Mode, OFlags, RenameFlags};

/// INTERFACE's default for `--max-bundle-size`: 512M unpacked.
pub const DEFAULT_MAX_UNPACKED_BYTES: u64 = 512 * 1024 * 1024;
/// INTERFACE's cap on a bundle's entries.
pub const DEFAULT_MAX_ENTRIES: u64 = 100_000;
/// A whole path inside a bundle, in bytes (Linux's `PATH_MAX`).
pub const DEFAULT_MAX_PATH_BYTES: usize = 4096;
/// One path component, in bytes (Linux's `NAME_MAX`).
pub const MAX_COMPONENT_BYTES: usize = 255;
/// Directories deep a path may go.
pub const DEFAULT_MAX_DEPTH: usize = 64;

/// What the decompressed stream may hold beyond the files' bytes, per entry: its header and
/// block padding (under 1 KiB) and a long-name or PAX record for a path at the length cap
/// (about 5 KiB); plus the end-of-archive blocks and record padding once.
const STREAM_BYTES_PER_ENTRY: u64 = 8 * 1024;
const STREAM_SLACK_BYTES: u64 = 64 * 1024;

/// The caps one unpacking enforces. `Default` is INTERFACE's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnpackLimits {
    /// Entries in the archive, and files and directories made (implied parents included).
    pub max_entries: u64,
    /// The sum of all files' sizes (`--max-bundle-size`).
    pub max_total_bytes: u64,
    /// One file's size; INTERFACE names no separate cap, so the default is the total's.
    pub max_file_bytes: u64,
    /// A path's length in bytes, after normalisation.
    pub max_path_bytes: usize,
    /// A path's number of components.
    pub max_depth: usize,
}

impl Default for UnpackLimits {
    fn default() -> Self {
        UnpackLimits {
            max_entries: DEFAULT_MAX_ENTRIES,
            max_total_bytes: DEFAULT_MAX_UNPACKED_BYTES,
            max_file_bytes: DEFAULT_MAX_UNPACKED_BYTES,
            max_path_bytes: DEFAULT_MAX_PATH_BYTES,
            max_depth: DEFAULT_MAX_DEPTH,
        }
    }
}

impl UnpackLimits {
    /// INTERFACE's caps with `--max-bundle-size` as the unpacked total (and file) cap.
    pub fn with_max_total_bytes(max_total_bytes: u64) -> Self {
        UnpackLimits {
            max_total_bytes,
            max_file_bytes: max_total_bytes,
            ..UnpackLimits::default()
        }
    }

    /// How many decompressed bytes an archive within these caps can need at most.
    fn max_stream_bytes(&self) -> u64 {
        self.max_total_bytes
            .saturating_add(self.max_entries.saturating_mul(STREAM_BYTES_PER_ENTRY))
            .saturating_add(STREAM_SLACK_BYTES)
    }
}

/// Why one entry refuses the whole bundle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("an absolute path")]
    AbsolutePath,
    #[error("a `..` component")]
    ParentComponent,
    #[error("an empty path")]
    EmptyPath,
    #[error("a path that is not UTF-8")]
    NotUtf8,
    #[error("a path of {len} bytes (at most {max})")]
    PathTooLong { len: usize, max: usize },
    #[error("a path component of {len} bytes (at most {MAX_COMPONENT_BYTES})")]
    ComponentTooLong { len: usize },
    #[error("a path {depth} components deep (at most {max})")]
    PathTooDeep { depth: usize, max: usize },
    #[error("a symbolic link")]
    Symlink,
    #[error("a hard link")]
    HardLink,
    #[error("a character device")]
    CharDevice,
    #[error("a block device")]
    BlockDevice,
    #[error("a fifo")]
    Fifo,
    #[error("an entry of tar type {0:?} (not a regular file or a directory)")]
    OtherType(char),
    #[error("a regular file whose name ends in `/`")]
    FileWithTrailingSlash,
    #[error("a directory entry that carries {0} bytes of data")]
    DirectoryWithData(u64),
    #[error("listed twice")]
    Duplicate,
    #[error("a path through `{0}`, which is a file")]
    ThroughFile(String),
    #[error("a file where the archive already made a directory")]
    FileOverDirectory,
    #[error("a file of {size} bytes (at most {max})")]
    FileTooLarge { size: u64, max: u64 },
    #[error("the entry that takes the unpacked size past {max} bytes")]
    TotalTooLarge { max: u64 },
    #[error("entry number {count} (at most {max} entries)")]
    TooManyEntries { count: u64, max: u64 },
}

impl Refusal {
    /// What the user can do about it.
    pub fn fix(&self) -> &'static str {
        match self {
            Refusal::FileTooLarge { .. } | Refusal::TotalTooLarge { .. } => {
                "raise `--max-bundle-size` if the package really is that large"
            }
            Refusal::TooManyEntries { .. } => {
                "a bundle holds at most that many files and directories; ask its publisher to \
                 slim it down"
            }
            _ => {
                "a bundle may hold only regular files and directories, with relative paths each \
                 listed once; ask its publisher to rebuild it with `mcp-j push`"
            }
        }
    }
}

/// An unpacking that failed; nothing of it is left on disk.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("bundle refused: entry `{entry}` is {reason}; {}", reason.fix())]
    Refused { entry: String, reason: Refusal },
    #[error(
        "bundle refused: its decompressed stream passes {max} bytes (a gzip bomb, or a bundle \
         over the caps; raise `--max-bundle-size` if the package is really that large)"
    )]
    StreamTooLarge { max: u64 },
    #[error("bundle refused: it is not a valid .tar.gz ({0}); fetch it again or ask its publisher")]
    Malformed(io::Error),
    #[error(
        "cannot unpack into {}: it already exists (remove it, or use the copy that is there)",
        .0.display()
    )]
    DestinationExists(PathBuf),
    #[error("cannot unpack the bundle: {what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

impl UnpackError {
    fn io(what: &'static str, path: &Path, source: impl Into<io::Error>) -> Self {
        UnpackError::Io {
            what,
            path: path.to_path_buf(),
            source: source.into(),
        }
    }
}

/// What an unpacking wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnpackSummary {
    pub files: u64,
    pub directories: u64,
    pub bytes: u64,
}

/// Unpacks the `.tar.gz` bundle read from `bundle` into `dest`, which must not exist and
/// whose parent must. Everything is written into a fresh directory in `dest`'s parent and
/// renamed to `dest` (never replacing anything) once all entries were accepted; on any
/// failure the fresh directory is removed and `dest` is untouched.
pub fn unpack_bundle(bundle: impl Read, dest: &Path, limits: &UnpackLimits) -> Result<UnpackSummary, UnpackError> {
    unpack_bundle_with(bundle, dest, limits, Durability::Synced)
}

/// Whether an unpacked tree must survive a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Synced to disk before it is renamed into place (a tree that is kept).
    Synced,
    /// Not synced: a tree for one run only, unpacked afresh by the next (a sync would
    /// flush the whole file system on every start).
    Transient,
}

/// [`unpack_bundle`], choosing whether the tree is synced.
pub fn unpack_bundle_with(
    bundle: impl Read,
    dest: &Path,
    limits: &UnpackLimits,
    durability: Durability,
) -> Result<UnpackSummary, UnpackError> {
    let (parent, name) = match (dest.parent(), dest.file_name()) {
        (Some(parent), Some(name)) => (
            if parent.as_os_str().is_empty() {
                Path::new(".")
            } else {
                parent
            },
            name,
        ),
        _ => {
            return Err(UnpackError::io(
                "destination",
                dest,
                io::Error::new(io::ErrorKind::InvalidInput, "has no parent directory or name"),
            ));
        }
    };
    if std::fs::symlink_metadata(dest).is_ok() {
        return Err(UnpackError::DestinationExists(dest.to_path_buf()));
    }
    let mut prefix = std::ffi::OsString::from(".");
    prefix.push(name);
    prefix.push(".unpack-");
    // Removed on drop (without following links) unless renamed into place.
    let fresh = tempfile::Builder::new()
        .prefix(&prefix)
        .tempdir_in(parent)
        .map_err(|e| UnpackError::io("creating a fresh directory in", parent, e))?;
    let root = rustix::fs::open(
        fresh.path(),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| UnpackError::io("opening", fresh.path(), e))?;

    let summary = write_entries(bundle, &root, fresh.path(), limits)?;

    rustix::fs::fchmod(&root, Mode::from_raw_mode(0o755))
        .map_err(|e| UnpackError::io("setting the mode of", fresh.path(), e))?;
    // The tree must be on disk before its name says it is complete.
    if durability == Durability::Synced {
        rustix::fs::syncfs(&root).map_err(|e| UnpackError::io("syncing", fresh.path(), e))?;
    }
    let parent_fd = rustix::fs::open(
        parent,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| UnpackError::io("opening", parent, e))?;
    let fresh_name = fresh
        .path()
        .file_name()
        .ok_or_else(|| UnpackError::io("naming", fresh.path(), io::ErrorKind::InvalidInput))?;
    let renamed = match rustix::fs::renameat_with(&parent_fd, fresh_name, &parent_fd, name, RenameFlags::NOREPLACE) {
        // A file system without RENAME_NOREPLACE: a plain rename still never replaces a
        // non-empty directory (ENOTEMPTY) nor puts a directory over a file (ENOTDIR).
        Err(rustix::io::Errno::INVAL) => rustix::fs::renameat(&parent_fd, fresh_name, &parent_fd, name),
        other => other,
    };
    match renamed {
        Ok(()) => {}
        Err(rustix::io::Errno::EXIST | rustix::io::Errno::NOTEMPTY | rustix::io::Errno::NOTDIR) => {
            return Err(UnpackError::DestinationExists(dest.to_path_buf()));
        }
        Err(e) => return Err(UnpackError::io("renaming the unpacked bundle to", dest, e)),
    }
    // Renamed: nothing is left at the fresh path for the guard to remove.
    let _ = fresh.keep();
    // The tree is complete under its name now, so this is not a failure of the unpacking:
    // a lost sync only risks losing the rename in a crash, and then the caller unpacks again.
    if durability == Durability::Synced {
        let _ = rustix::fs::fsync(&parent_fd);
    }
    Ok(summary)
}

/// What the archive has put at a path so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Made {
    File,
    /// `explicit`: the archive listed it (rather than only a path below it).
    Directory {
        explicit: bool,
    },
}

/// What the archive has made so far, as a tree of names (node id, name → node id, what):
/// memory grows with the names made, each at most 255 bytes, rather than with whole paths of
/// up to 4096 bytes each.
#[derive(Default)]
struct MadeTree {
    nodes: HashMap<(u64, String), (u64, Made)>,
    next_id: u64,
}

impl MadeTree {
    const ROOT: u64 = 0;

    fn get(&self, parent: u64, name: &str) -> Option<(u64, Made)> {
        self.nodes.get(&(parent, name.to_owned())).copied()
    }

    /// Records `name` under `parent` (a directory listed after it was implied keeps its id)
    /// and returns its id.
    fn insert(&mut self, parent: u64, name: &str, what: Made) -> u64 {
        let key = (parent, name.to_owned());
        if let Some(node) = self.nodes.get_mut(&key) {
            node.1 = what;
            return node.0;
        }
        self.next_id += 1;
        self.nodes.insert(key, (self.next_id, what));
        self.next_id
    }
}

fn write_entries(
    bundle: impl Read,
    root: &OwnedFd,
    root_path: &Path,
    limits: &UnpackLimits,
) -> Result<UnpackSummary, UnpackError> {
    let stream_max = limits.max_stream_bytes();
    let stream_over = Rc::new(Cell::new(false));
    let decoder = flate2::read::GzDecoder::new(bundle);
    let capped = CappedReader {
        inner: decoder,
        remaining: stream_max,
        over: Rc::clone(&stream_over),
    };
    let mut archive = tar::Archive::new(capped);
    // A read error is a stream over the cap when the capped reader says so.
    let stream_error = |e: io::Error| {
        if stream_over.get() {
            UnpackError::StreamTooLarge { max: stream_max }
        } else {
            UnpackError::Malformed(e)
        }
    };

    let mut made = MadeTree::default();
    let mut summary = UnpackSummary {
        files: 0,
        directories: 0,
        bytes: 0,
    };
    let mut count: u64 = 0;
    for entry in archive.entries().map_err(stream_error)? {
        let mut entry = entry.map_err(stream_error)?;
        let raw_path = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw_path).into_owned();
        let refuse = |reason: Refusal| UnpackError::Refused {
            entry: shown.clone(),
            reason,
        };
        let kind = entry.header().entry_type();
        // A PAX global header is metadata for the archive, not a member; `tar` applies none
        // of it, so it can be passed over (its bytes count against the stream cap).
        if kind.is_pax_global_extensions() {
            continue;
        }
        count += 1;
        if count > limits.max_entries {
            return Err(refuse(Refusal::TooManyEntries {
                count,
                max: limits.max_entries,
            }));
        }
        let is_dir = match kind {
            tar::EntryType::Regular => false,
            tar::EntryType::Directory => true,
            tar::EntryType::Symlink => return Err(refuse(Refusal::Symlink)),
            tar::EntryType::Link => return Err(refuse(Refusal::HardLink)),
            tar::EntryType::Char => return Err(refuse(Refusal::CharDevice)),
            tar::EntryType::Block => return Err(refuse(Refusal::BlockDevice)),
            tar::EntryType::Fifo => return Err(refuse(Refusal::Fifo)),
            other => return Err(refuse(Refusal::OtherType(char::from(other.as_byte())))),
        };
        let components = normalise_path(&raw_path, limits).map_err(refuse)?;
        let size = entry.size();
        if components.is_empty() {
            // `./`: the root itself, which is ours.
            if !is_dir {
                return Err(refuse(Refusal::EmptyPath));
            }
            if size != 0 {
                return Err(refuse(Refusal::DirectoryWithData(size)));
            }
            continue;
        }
        if is_dir && size != 0 {
            return Err(refuse(Refusal::DirectoryWithData(size)));
        }
        if !is_dir && raw_path.ends_with(b"/") {
            return Err(refuse(Refusal::FileWithTrailingSlash));
        }

        // The parents: each one a directory made before, or made now.
        let mut dir = rustix::fs::openat(
            root,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| UnpackError::io("opening", root_path, e))?;
        let (last, parents) = match components.split_last() {
            Some(split) => split,
            None => continue,
        };
        let mut so_far = String::new();
        let mut parent = MadeTree::ROOT;
        for component in parents {
            if !so_far.is_empty() {
                so_far.push('/');
            }
            so_far.push_str(component);
            parent = match made.get(parent, component) {
                Some((_, Made::File)) => return Err(refuse(Refusal::ThroughFile(so_far))),
                Some((id, Made::Directory { .. })) => id,
                None => {
                    room_for_one_more(&summary, limits).map_err(refuse)?;
                    make_directory(&dir, component, root_path, &so_far)?;
                    summary.directories += 1;
                    made.insert(parent, component, Made::Directory { explicit: false })
                }
            };
            dir = open_directory(&dir, component, root_path, &so_far)?;
        }
        let full = components.join("/");
        let existing = made.get(parent, last).map(|(_, what)| what);

        if is_dir {
            match existing {
                Some(Made::File) | Some(Made::Directory { explicit: true }) => {
                    return Err(refuse(Refusal::Duplicate));
                }
                Some(Made::Directory { explicit: false }) => {}
                None => {
                    room_for_one_more(&summary, limits).map_err(refuse)?;
                    make_directory(&dir, last, root_path, &full)?;
                    summary.directories += 1;
                }
            }
            made.insert(parent, last, Made::Directory { explicit: true });
            continue;
        }

        match existing {
            Some(Made::File) | Some(Made::Directory { explicit: true }) => {
                return Err(refuse(Refusal::Duplicate));
            }
            Some(Made::Directory { explicit: false }) => {
                return Err(refuse(Refusal::FileOverDirectory));
            }
            None => {}
        }
        room_for_one_more(&summary, limits).map_err(refuse)?;
        if size > limits.max_file_bytes {
            return Err(refuse(Refusal::FileTooLarge {
                size,
                max: limits.max_file_bytes,
            }));
        }
        let total = summary.bytes.saturating_add(size);
        if total > limits.max_total_bytes {
            return Err(refuse(Refusal::TotalTooLarge {
                max: limits.max_total_bytes,
            }));
        }
        let executable = entry.header().mode().map_err(stream_error)? & 0o111 != 0;
        let file_path = root_path.join(&full);
        let fd = rustix::fs::openat(
            &dir,
            last.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| UnpackError::io("creating", &file_path, e))?;
        made.insert(parent, last, Made::File);
        let mut file = File::from(fd);
        // `tar` yields exactly `size` bytes or an error; the `take` keeps the write within
        // the size checked above whatever the reader does.
        let written = io::copy(&mut (&mut entry).take(size), &mut file).map_err(|e| {
            if stream_over.get() {
                UnpackError::StreamTooLarge { max: stream_max }
            } else if e.kind() == io::ErrorKind::UnexpectedEof || e.kind() == io::ErrorKind::Other {
                UnpackError::Malformed(e)
            } else {
                UnpackError::io("writing", &file_path, e)
            }
        })?;
        if written != size {
            return Err(UnpackError::Malformed(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("entry `{shown}` ends after {written} of {size} bytes"),
            )));
        }
        let mode = if executable { 0o755 } else { 0o644 };
        rustix::fs::fchmod(&file, Mode::from_raw_mode(mode))
            .map_err(|e| UnpackError::io("setting the mode of", &file_path, e))?;
        file.flush().map_err(|e| UnpackError::io("writing", &file_path, e))?;
        summary.files += 1;
        summary.bytes = total;
    }
    Ok(summary)
}

/// The entry cap also bounds what is made on disk: a directory the archive only implies
/// (`a/b/c/file` without `a/`) counts like a listed one, as it does in a bundle `push` builds.
fn room_for_one_more(summary: &UnpackSummary, limits: &UnpackLimits) -> Result<(), Refusal> {
    let count = summary.files + summary.directories + 1;
    if count > limits.max_entries {
        return Err(Refusal::TooManyEntries {
            count,
            max: limits.max_entries,
        });
    }
    Ok(())
}

/// The components of an archive path: `.` and empty components dropped; absolute paths,
/// `..`, non-UTF-8 names and paths over the caps refused.
fn normalise_path(raw: &[u8], limits: &UnpackLimits) -> Result<Vec<String>, Refusal> {
    if raw.is_empty() {
        return Err(Refusal::EmptyPath);
    }
    if raw.starts_with(b"/") {
        return Err(Refusal::AbsolutePath);
    }
    let text = std::str::from_utf8(raw).map_err(|_| Refusal::NotUtf8)?;
    let mut components = Vec::new();
    for component in text.split('/') {
        match component {
            "" | "." => {}
            ".." => return Err(Refusal::ParentComponent),
            name if name.len() > MAX_COMPONENT_BYTES => {
                return Err(Refusal::ComponentTooLong { len: name.len() });
            }
            name => components.push(name.to_owned()),
        }
    }
    let len = components.iter().map(|c| c.len() + 1).sum::<usize>();
    if len > limits.max_path_bytes {
        return Err(Refusal::PathTooLong {
            len,
            max: limits.max_path_bytes,
        });
    }
    if components.len() > limits.max_depth {
        return Err(Refusal::PathTooDeep {
            depth: components.len(),
            max: limits.max_depth,
        });
    }
    Ok(components)
}

fn make_directory(parent: &OwnedFd, name: &str, root_path: &Path, relative: &str) -> Result<(), UnpackError> {
    // `mkdirat` fails on anything already there, links included; the mode is set on the
    // opened directory so that the umask does not decide it.
    rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o700))
        .map_err(|e| UnpackError::io("creating the directory", &root_path.join(relative), e))?;
    let dir = open_directory(parent, name, root_path, relative)?;
    rustix::fs::fchmod(&dir, Mode::from_raw_mode(0o755))
        .map_err(|e| UnpackError::io("setting the mode of", &root_path.join(relative), e))
}

fn open_directory(parent: &OwnedFd, name: &str, root_path: &Path, relative: &str) -> Result<OwnedFd, UnpackError> {
    rustix::fs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| UnpackError::io("opening the directory", &root_path.join(relative), e))
}

/// A reader that fails once more than `remaining` bytes went through, and says so in `over`
/// (the error reaches the caller through `tar`, which keeps only its text).
struct CappedReader<R> {
    inner: R,
    remaining: u64,
    over: Rc<Cell<bool>>,
}

impl<R: Read> Read for CappedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        // Read one byte more than allowed, to tell "exactly at the cap" from "past it".
        let allowed = usize::try_from(self.remaining.saturating_add(1))
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = self.inner.read(&mut buf[..allowed])?;
        let n64 = n as u64;
        if n64 > self.remaining {
            self.over.set(true);
            return Err(io::Error::other("the decompressed bundle passes its cap"));
        }
        self.remaining -= n64;
        Ok(n)
    }
}

#[cfg(test)]
#[path = "unpack_tests.rs"]
mod tests;
