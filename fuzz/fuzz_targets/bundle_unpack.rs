//! Fuzz target: arbitrary bytes as a bundle for `mcp_j_package::unpack::unpack_bundle`, both
//! as they are and gzipped (so that the fuzzer reaches the tar parser without having to
//! produce valid deflate). Properties: nothing panics; a refusal leaves nothing in the
//! parent directory; an accepted bundle is a tree of regular files (0644 or 0755) and
//! directories (0755) only, under the destination, within the caps, and building a bundle
//! from it and unpacking that again gives the same tree.
//!
//! Run with `cargo fuzz run bundle_unpack` (nightly). On stable, `cargo build` compiles it
//! (CI does that); `cargo run --features stdin-main --bin bundle_unpack -- < file` replays
//! one input.

#![cfg_attr(not(feature = "stdin-main"), no_main)]

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use mcp_j_package::bundle::build_bundle;
use mcp_j_package::unpack::{UnpackLimits, unpack_bundle};

fn limits() -> UnpackLimits {
    // Small, so that the fuzzer also reaches every cap.
    UnpackLimits {
        max_entries: 64,
        max_total_bytes: 1 << 20,
        max_file_bytes: 256 * 1024,
        max_path_bytes: 256,
        max_depth: 8,
    }
}

/// Every path under `root` with (is_dir, mode, bytes); panics on any other shape.
fn tree(root: &Path) -> BTreeMap<PathBuf, (bool, u32, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for item in std::fs::read_dir(&dir).expect("read_dir") {
            let path = item.expect("entry").path();
            let meta = std::fs::symlink_metadata(&path).expect("lstat");
            let mode = meta.permissions().mode() & 0o7777;
            let relative = path.strip_prefix(root).expect("under root").to_path_buf();
            if meta.is_dir() {
                assert_eq!(mode, 0o755, "{}", path.display());
                pending.push(path);
                out.insert(relative, (true, mode, Vec::new()));
            } else {
                assert!(meta.is_file(), "{} is neither file nor dir", path.display());
                assert!(mode == 0o644 || mode == 0o755, "{}: {mode:o}", path.display());
                out.insert(relative, (false, mode, std::fs::read(&path).expect("read")));
            }
        }
    }
    out
}

fn check(bundle: &[u8]) {
    let limits = limits();
    let base = tempfile::tempdir().expect("tempdir");
    let dest = base.path().join("pkg");
    match unpack_bundle(bundle, &dest, &limits) {
        Err(_) => {
            let left: Vec<_> = std::fs::read_dir(base.path()).expect("read_dir").collect();
            assert!(left.is_empty(), "a refusal left {left:?}");
        }
        Ok(summary) => {
            let names: Vec<_> = std::fs::read_dir(base.path()).expect("read_dir").collect();
            assert_eq!(names.len(), 1, "only the destination: {names:?}");
            let unpacked = tree(&dest);
            let files = unpacked.values().filter(|(is_dir, ..)| !is_dir).count() as u64;
            let bytes: u64 = unpacked.values().map(|(.., data)| data.len() as u64).sum();
            assert_eq!((files, bytes), (summary.files, summary.bytes));
            assert!(bytes <= limits.max_total_bytes);
            assert!(summary.files + summary.directories <= limits.max_entries);
            // Round trip: what was accepted builds a bundle that unpacks to the same tree.
            // (Not when the tree holds a top-level `manifest.json`, which bundles leave out.)
            if !dest.join("manifest.json").exists() {
                let rebuilt = build_bundle(&dest, &limits).expect("an accepted tree builds");
                let again = base.path().join("again");
                unpack_bundle(&rebuilt.bytes[..], &again, &limits).expect("a built bundle unpacks");
                assert_eq!(tree(&again), unpacked);
            }
        }
    }
}

fn one(data: &[u8]) {
    check(data);
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).expect("gzip");
    check(&encoder.finish().expect("gzip"));
}

#[cfg(not(feature = "stdin-main"))]
libfuzzer_sys::fuzz_target!(|data: &[u8]| one(data));

#[cfg(feature = "stdin-main")]
fn main() {
    use std::io::Read;
    let mut data = Vec::new();
    std::io::stdin().read_to_end(&mut data).expect("read stdin");
    one(&data);
}
