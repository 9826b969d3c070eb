//! Building a bundle from a directory for `push DIR` (INTERFACE.md, *Packages*;
//! REGISTRY_API.md): the same tree always gives the same bytes, hence the same digest.
//!
//! What makes it deterministic: entries sorted by their path's bytes (a directory before what
//! it holds), metadata normalised (mtime 0, uid/gid 0, no user or group names, mode 0755 for
//! directories and for files with any executable bit, 0644 for other files), GNU tar headers
//! built here rather than copied from the file system, and a gzip header without mtime or
//! file name at a fixed compression level. `manifest.json` at the top is not part of the
//! bundle (REGISTRY_API: `push` fills its `bundle` object afterwards). Only regular files and
//! directories go in; anything else is refused by name, as are trees the unpacker would
//! refuse (non-UTF-8 names, the caps), so that whatever is pushed can be run.

use std::fs::{File, Metadata};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::unpack::{MAX_COMPONENT_BYTES, UnpackLimits};

/// The file at the top of `DIR` that describes the package and is not bundled.
pub const MANIFEST_FILE: &str = "manifest.json";

/// The gzip level: part of the format, since another level gives other bytes.
const GZIP_LEVEL: u32 = 6;

/// A bundle built in memory, with its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    pub bytes: Vec<u8>,
    pub summary: BundleSummary,
}

/// The SHA-256 and size of a built bundle, and what it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BundleSummary {
    pub sha256: [u8; 32],
    pub size: u64,
    pub files: u64,
    pub directories: u64,
}

impl BundleSummary {
    /// The digest as REGISTRY_API writes it: `sha256:` and 64 lowercase hex digits.
    pub fn digest(&self) -> String {
        let mut out = String::with_capacity(7 + 64);
        out.push_str("sha256:");
        for byte in self.sha256 {
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
        out
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error(
        "cannot bundle {}: it is {what}; a bundle holds only regular files and directories \
         (replace it with a copy of what it points to, or remove it from the directory)",
        path.display()
    )]
    NotFileOrDirectory { path: PathBuf, what: &'static str },
    #[error(
        "cannot bundle {}: its name is not UTF-8 (rename it; bundles carry UTF-8 paths)",
        .0.display()
    )]
    NotUtf8(PathBuf),
    #[error("cannot bundle {}: {why} (shorten or flatten the tree)", path.display())]
    PathOverCap { path: PathBuf, why: String },
    #[error(
        "cannot bundle {}: the package would be {what} (at most {max}; remove files, or raise \
         `--max-bundle-size` if the package is really that large)",
        dir.display()
    )]
    OverCap { dir: PathBuf, what: String, max: u64 },
    #[error("cannot bundle {}: it changed while it was read; push again", .0.display())]
    Changed(PathBuf),
    #[error("cannot bundle {}: {what}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

fn io_error(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> BundleError {
    let path = path.to_path_buf();
    move |source| BundleError::Io { what, path, source }
}

/// Builds the bundle of `dir` in memory.
pub fn build_bundle(dir: &Path, limits: &UnpackLimits) -> Result<Bundle, BundleError> {
    let mut bytes = Vec::new();
    let summary = write_bundle(dir, limits, &mut bytes)?;
    Ok(Bundle { bytes, summary })
}

/// One member of the bundle: its path inside the bundle and on the host.
struct Member {
    relative: String,
    host: PathBuf,
    is_dir: bool,
}

/// Writes the bundle of `dir` to `out`, hashing it on the way.
pub fn write_bundle(dir: &Path, limits: &UnpackLimits, out: impl Write) -> Result<BundleSummary, BundleError> {
    let members = collect(dir, limits)?;
    let hashing = HashingWriter {
        inner: out,
        hasher: Sha256::new(),
        size: 0,
    };
    let gzip = flate2::GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(hashing, flate2::Compression::new(GZIP_LEVEL));
    let mut tar = tar::Builder::new(gzip);
    let mut files = 0u64;
    let mut directories = 0u64;
    let mut total = 0u64;
    for member in &members {
        let mut header = tar::Header::new_gnu();
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        if member.is_dir {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(0o755);
            header.set_size(0);
            let name = format!("{}/", member.relative);
            tar.append_data(&mut header, &name, io::empty())
                .map_err(io_error("writing the bundle entry for", &member.host))?;
            directories += 1;
            continue;
        }
        // Opened without following a link, then checked: what is read is what was listed.
        let file = rustix::fs::open(
            &member.host,
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map(File::from)
        .map_err(|e| BundleError::Io {
            what: "opening",
            path: member.host.clone(),
            source: e.into(),
        })?;
        let meta = file
            .metadata()
            .map_err(io_error("reading the metadata of", &member.host))?;
        if !meta.is_file() {
            return Err(BundleError::Changed(member.host.clone()));
        }
        let size = meta.len();
        if size > limits.max_file_bytes {
            return Err(BundleError::OverCap {
                dir: dir.to_path_buf(),
                what: format!("{size} bytes in {}", member.relative),
                max: limits.max_file_bytes,
            });
        }
        total = total.saturating_add(size);
        if total > limits.max_total_bytes {
            return Err(BundleError::OverCap {
                dir: dir.to_path_buf(),
                what: format!("over {} bytes unpacked", limits.max_total_bytes),
                max: limits.max_total_bytes,
            });
        }
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(if meta.permissions().mode() & 0o111 != 0 {
            0o755
        } else {
            0o644
        });
        header.set_size(size);
        let mut data = ExactReader {
            inner: file.take(size),
            left: size,
        };
        tar.append_data(&mut header, &member.relative, &mut data).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                BundleError::Changed(member.host.clone())
            } else {
                BundleError::Io {
                    what: "reading",
                    path: member.host.clone(),
                    source: e,
                }
            }
        })?;
        files += 1;
    }
    let gzip = tar.into_inner().map_err(io_error("finishing the bundle of", dir))?;
    let hashing = gzip.finish().map_err(io_error("finishing the bundle of", dir))?;
    let mut hashing = hashing;
    hashing
        .inner
        .flush()
        .map_err(io_error("finishing the bundle of", dir))?;
    Ok(BundleSummary {
        sha256: hashing.hasher.finalize().into(),
        size: hashing.size,
        files,
        directories,
    })
}

/// Every member of `dir` in bundle order, after the checks of shape, names and count.
fn collect(dir: &Path, limits: &UnpackLimits) -> Result<Vec<Member>, BundleError> {
    let top = std::fs::symlink_metadata(dir).map_err(io_error("reading", dir))?;
    if !top.is_dir() {
        return Err(BundleError::NotFileOrDirectory {
            path: dir.to_path_buf(),
            what: describe(&top),
        });
    }
    let mut members = Vec::new();
    let mut pending = vec![(dir.to_path_buf(), String::new(), 0usize)];
    while let Some((host_dir, relative_dir, depth)) = pending.pop() {
        let listing = std::fs::read_dir(&host_dir).map_err(io_error("listing", &host_dir))?;
        for item in listing {
            let item = item.map_err(io_error("listing", &host_dir))?;
            let host = item.path();
            let name = item
                .file_name()
                .into_string()
                .map_err(|_| BundleError::NotUtf8(host.clone()))?;
            if relative_dir.is_empty() && name == MANIFEST_FILE {
                continue;
            }
            let relative = if relative_dir.is_empty() {
                name.clone()
            } else {
                format!("{relative_dir}/{name}")
            };
            if name.len() > MAX_COMPONENT_BYTES {
                return Err(BundleError::PathOverCap {
                    path: host,
                    why: format!("a name of {} bytes (at most {MAX_COMPONENT_BYTES})", name.len()),
                });
            }
            if relative.len() + 1 > limits.max_path_bytes {
                return Err(BundleError::PathOverCap {
                    path: host,
                    why: format!("a path of over {} bytes", limits.max_path_bytes),
                });
            }
            if depth + 1 > limits.max_depth {
                return Err(BundleError::PathOverCap {
                    path: host,
                    why: format!("a path over {} components deep", limits.max_depth),
                });
            }
            let meta = std::fs::symlink_metadata(&host).map_err(io_error("reading", &host))?;
            let is_dir = if meta.is_dir() {
                true
            } else if meta.is_file() {
                false
            } else {
                return Err(BundleError::NotFileOrDirectory {
                    path: host,
                    what: describe(&meta),
                });
            };
            if members.len() as u64 >= limits.max_entries {
                return Err(BundleError::OverCap {
                    dir: dir.to_path_buf(),
                    what: "more entries than allowed".to_owned(),
                    max: limits.max_entries,
                });
            }
            if is_dir {
                pending.push((host.clone(), relative.clone(), depth + 1));
            }
            members.push(Member { relative, host, is_dir });
        }
    }
    // Byte order of the whole path: a prefix sorts first, so a directory precedes its members.
    members.sort_by(|a, b| a.relative.as_bytes().cmp(b.relative.as_bytes()));
    Ok(members)
}

fn describe(meta: &Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let kind = meta.file_type();
    if kind.is_symlink() {
        "a symbolic link"
    } else if kind.is_fifo() {
        "a fifo"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else {
        "not a regular file or a directory"
    }
}

/// A file's bytes, exactly as many as its header says: a file that shrank while it was read
/// is an error (`UnexpectedEof`), not a short entry that would shift the archive.
struct ExactReader<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for ExactReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file shrank while it was read",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    size: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
#[path = "bundle_tests.rs"]
mod tests;
