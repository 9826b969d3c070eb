//! Hashing while streaming, with a byte cap: [`HashingReader`] wraps what a registry sends
//! so every byte is hashed once, on its way to disk, and a stream that runs past its cap
//! fails at the first byte too many instead of being buffered or written in full.
//!
//! The cap is what REGISTRY_API.md asks for: 1 MiB for a manifest ([`MANIFEST_CAP`]), the
//! resolve answer's `size_bytes` (bounded by the local maximum) for a bundle. `sha2` picks
//! the SHA-NI instructions itself where the CPU has them.

use std::error::Error;
use std::fmt;
use std::io::{self, Read};

use mcp_j_policy::package::Digest;
use sha2::{Digest as _, Sha256};

/// The most bytes a manifest may have (REGISTRY_API.md).
pub const MANIFEST_CAP: u64 = 1024 * 1024;

/// The error inside the [`io::Error`] a [`HashingReader`] returns when its source has more
/// bytes than the cap ([`io::ErrorKind::FileTooLarge`]); [`cap_exceeded`] finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapExceeded {
    /// The cap that was passed, in bytes.
    pub cap: u64,
}

impl fmt::Display for CapExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the data is larger than its limit of {} bytes", self.cap)
    }
}

impl Error for CapExceeded {}

/// The [`CapExceeded`] behind `error`, if that is why a read failed.
pub fn cap_exceeded(error: &io::Error) -> Option<CapExceeded> {
    error.get_ref()?.downcast_ref::<CapExceeded>().copied()
}

/// What a finished stream was: its digest and its length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hashed {
    /// `sha256:` and the hex of every byte read.
    pub digest: Digest,
    /// How many bytes were read.
    pub size: u64,
}

/// A reader that hashes what passes through it and fails once more than `cap` bytes came.
#[derive(Debug)]
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    size: u64,
    cap: u64,
}

impl<R: Read> HashingReader<R> {
    /// Wraps `inner`; reading more than `cap` bytes from it is an error.
    pub fn new(inner: R, cap: u64) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            size: 0,
            cap,
        }
    }

    /// How many bytes have passed so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The digest and size of everything read. Read to the end first: this does not.
    pub fn finish(self) -> Hashed {
        Hashed {
            digest: digest_of_hash(self.hasher.finalize().into()),
            size: self.size,
        }
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // Never ask for more than one byte past the cap: a source that overruns is caught
        // on that byte, and what it sends beyond is never read.
        let room = self.cap.saturating_sub(self.size).saturating_add(1);
        let len = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..len])?;
        if self.size.saturating_add(n as u64) > self.cap {
            return Err(io::Error::new(
                io::ErrorKind::FileTooLarge,
                CapExceeded { cap: self.cap },
            ));
        }
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
}

/// `sha256:` and the hex of a finished SHA-256.
pub(crate) fn digest_of_hash(hash: [u8; 32]) -> Digest {
    use std::fmt::Write as _;
    let mut text = String::with_capacity(7 + 64);
    text.push_str("sha256:");
    for byte in hash {
        let _ = write!(text, "{byte:02x}");
    }
    // The text is `sha256:` and 64 lowercase hex digits by construction.
    match text.parse() {
        Ok(digest) => digest,
        Err(_) => unreachable!("a formatted SHA-256 is a digest"),
    }
}

/// The digest of `bytes`.
pub fn digest_bytes(bytes: &[u8]) -> Digest {
    digest_of_hash(Sha256::digest(bytes).into())
}

/// Reads `reader` to its end (at most `cap` bytes) and returns what it was.
pub fn hash_reader(reader: impl Read, cap: u64) -> io::Result<Hashed> {
    let mut hashing = HashingReader::new(reader, cap);
    io::copy(&mut hashing, &mut io::sink())?;
    Ok(hashing.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A source that hands out at most `chunk` bytes a call, like a slow socket.
    struct Chunked<'a> {
        data: &'a [u8],
        chunk: usize,
        reads: usize,
    }

    impl Read for Chunked<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.reads += 1;
            let n = buf.len().min(self.chunk).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    /// A source that never ends: it proves the reader stops at the cap and not at EOF.
    struct Endless {
        given: u64,
    }

    impl Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            buf.fill(b'x');
            self.given += buf.len() as u64;
            Ok(buf.len())
        }
    }

    #[test]
    fn known_digests() {
        // `printf '' | sha256sum` and `printf abc | sha256sum`.
        assert_eq!(
            digest_bytes(b"").as_str(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let hashed = hash_reader(&b"abc"[..], 3).unwrap();
        assert_eq!(
            hashed.digest.as_str(),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(hashed.size, 3);
    }

    #[test]
    fn caps_are_exact() {
        let data = vec![7u8; 1000];
        for (cap, ok) in [(999, false), (1000, true), (1001, true), (0, false)] {
            let result = hash_reader(&data[..], cap);
            match (ok, result) {
                (true, Ok(hashed)) => {
                    assert_eq!(hashed.size, 1000);
                    assert_eq!(hashed.digest, digest_bytes(&data));
                }
                (false, Err(error)) => {
                    assert_eq!(cap_exceeded(&error), Some(CapExceeded { cap }), "cap {cap}");
                    assert_eq!(error.kind(), io::ErrorKind::FileTooLarge);
                    assert!(error.to_string().contains(&format!("limit of {cap} bytes")), "{error}");
                }
                (ok, result) => panic!("cap {cap}: expected ok={ok}, got {result:?}"),
            }
        }
        assert_eq!(hash_reader(&b""[..], 0).map(|h| h.size).ok(), Some(0));
    }

    #[test]
    fn a_chunked_source_hashes_the_same_and_is_capped_at_the_same_byte() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 31 % 251) as u8).collect();
        for chunk in [1, 7, 4096, 65_536] {
            let mut source = Chunked {
                data: &data,
                chunk,
                reads: 0,
            };
            let hashed = hash_reader(&mut source, data.len() as u64).unwrap();
            assert_eq!(
                hashed,
                Hashed {
                    digest: digest_bytes(&data),
                    size: data.len() as u64
                }
            );
            assert!(source.reads >= data.len() / chunk, "chunk {chunk}");

            let mut reader = HashingReader::new(
                Chunked {
                    data: &data,
                    chunk,
                    reads: 0,
                },
                data.len() as u64 - 1,
            );
            let error = io::copy(&mut reader, &mut io::sink()).unwrap_err();
            assert!(cap_exceeded(&error).is_some(), "chunk {chunk}: {error}");
            // The read that brought the byte too many failed whole: only earlier reads passed.
            assert!(reader.size() < data.len() as u64, "chunk {chunk}");
            assert!(
                reader.size() + chunk as u64 >= data.len() as u64 - 1,
                "chunk {chunk}: it failed at the cap, not before"
            );
        }
    }

    #[test]
    fn an_endless_source_is_stopped_one_byte_past_the_cap() {
        let mut source = Endless { given: 0 };
        let mut reader = HashingReader::new(&mut source, 10_000);
        let error = io::copy(&mut reader, &mut io::sink()).unwrap_err();
        assert!(cap_exceeded(&error).is_some());
        assert!(reader.size() <= 10_000);
        assert_eq!(source.given, 10_001, "nothing beyond the first byte too many is read");
    }

    #[test]
    fn the_cap_error_passes_other_errors_through() {
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::new(io::ErrorKind::ConnectionReset, "reset"))
            }
        }
        let error = hash_reader(Broken, 10).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::ConnectionReset);
        assert_eq!(cap_exceeded(&error), None);
    }
}
