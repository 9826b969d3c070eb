use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime};

use super::*;
use crate::unpack::{UnpackError, unpack_bundle};

fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

fn set_mtime(path: &Path, when: SystemTime) {
    fs::File::open(path)
        .expect("open")
        .set_modified(when)
        .expect("set mtime");
}

/// A small package tree, made in the given order (so that the directory order differs).
fn make_tree(root: &Path, reverse: bool) {
    let mut steps: Vec<Box<dyn Fn()>> = vec![
        Box::new(|| fs::write(root.join("server.py"), b"print('hi')\n").expect("write")),
        Box::new(|| {
            fs::create_dir_all(root.join("bin")).expect("mkdir");
            fs::write(root.join("bin/run"), b"#!/bin/sh\nexec python3 server.py\n").expect("w");
            set_mode(&root.join("bin/run"), 0o755);
        }),
        Box::new(|| {
            fs::create_dir_all(root.join("lib/deep/er")).expect("mkdir");
            fs::write(root.join("lib/deep/er/data.bin"), vec![7u8; 70_000]).expect("w");
            fs::write(root.join("lib/a.txt"), b"a").expect("w");
            fs::write(root.join("lib.txt"), b"sorts between lib and lib/").expect("w");
        }),
        Box::new(|| fs::create_dir_all(root.join("empty")).expect("mkdir")),
        Box::new(|| {
            fs::write(root.join("manifest.json"), b"{\"not\": \"bundled\"}").expect("w");
            fs::create_dir_all(root.join("sub")).expect("mkdir");
            fs::write(root.join("sub/manifest.json"), b"{\"nested\": true}").expect("w");
        }),
    ];
    if reverse {
        steps.reverse();
    }
    for step in steps {
        step();
    }
}

/// Every entry of a built bundle: (path, type byte, mode, uid, gid, mtime, user, group).
type EntryFacts = (String, u8, u32, u64, u64, u64, Vec<u8>, Vec<u8>);

fn entries_of(bytes: &[u8]) -> Vec<EntryFacts> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    archive
        .entries()
        .expect("entries")
        .map(|entry| {
            let entry = entry.expect("entry");
            let header = entry.header();
            (
                String::from_utf8(entry.path_bytes().into_owned()).expect("utf-8"),
                header.entry_type().as_byte(),
                header.mode().expect("mode"),
                header.uid().expect("uid"),
                header.gid().expect("gid"),
                header.mtime().expect("mtime"),
                header.username_bytes().unwrap_or_default().to_vec(),
                header.groupname_bytes().unwrap_or_default().to_vec(),
            )
        })
        .collect()
}

#[test]
fn the_bundle_is_sorted_normalised_and_without_the_top_manifest() {
    let dir = tempfile::tempdir().expect("tempdir");
    make_tree(dir.path(), false);
    set_mode(&dir.path().join("server.py"), 0o600);
    set_mode(&dir.path().join("lib"), 0o700);
    let bundle = build_bundle(dir.path(), &UnpackLimits::default()).expect("builds");
    let entries = entries_of(&bundle.bytes);
    let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "bin/",
            "bin/run",
            "empty/",
            "lib/",
            "lib.txt",
            "lib/a.txt",
            "lib/deep/",
            "lib/deep/er/",
            "lib/deep/er/data.bin",
            "server.py",
            "sub/",
            "sub/manifest.json",
        ]
    );
    for (name, kind, mode, uid, gid, mtime, user, group) in &entries {
        let expected_mode = if name.ends_with('/') || name == "bin/run" {
            0o755
        } else {
            0o644
        };
        let expected_kind = if name.ends_with('/') { b'5' } else { b'0' };
        assert_eq!((*kind, *mode), (expected_kind, expected_mode), "{name}");
        assert_eq!((*uid, *gid, *mtime), (0, 0, 0), "{name}");
        assert!(user.is_empty() && group.is_empty(), "{name}");
    }
    assert_eq!((bundle.summary.files, bundle.summary.directories), (6, 6));
    // gzip: no mtime (bytes 4..8), no flags (no file name), "unknown" OS.
    assert_eq!(&bundle.bytes[..4], &[0x1f, 0x8b, 8, 0]);
    assert_eq!(&bundle.bytes[4..8], &[0, 0, 0, 0]);
    assert_eq!(bundle.bytes[9], 255);
    assert_eq!(bundle.summary.size, bundle.bytes.len() as u64);
    let expected: [u8; 32] = Sha256::digest(&bundle.bytes).into();
    assert_eq!(bundle.summary.sha256, expected);
    let digest = bundle.summary.digest();
    assert!(digest.starts_with("sha256:") && digest.len() == 71, "{digest}");
    assert!(digest[7..].bytes().all(|b| HEX.contains(&b)), "{digest}");
}

#[test]
fn the_same_tree_gives_the_same_bytes() {
    let first = tempfile::tempdir().expect("tempdir");
    make_tree(first.path(), false);
    let limits = UnpackLimits::default();
    let once = build_bundle(first.path(), &limits).expect("builds");
    let twice = build_bundle(first.path(), &limits).expect("builds");
    assert_eq!(once, twice);

    // A copy made in the other order, with other mtimes, other non-exec mode bits, another
    // owner (when we may chown), and another top-level manifest.
    let copy = tempfile::tempdir().expect("tempdir");
    make_tree(copy.path(), true);
    fs::write(copy.path().join("manifest.json"), b"{\"other\": 1}").expect("w");
    set_mode(&copy.path().join("server.py"), 0o600);
    set_mode(&copy.path().join("bin/run"), 0o700);
    set_mode(&copy.path().join("lib"), 0o700);
    let past = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    for path in ["server.py", "bin/run", "lib/a.txt", "lib", "empty", "."] {
        set_mtime(&copy.path().join(path), past);
    }
    if rustix::process::geteuid().is_root() {
        for path in ["server.py", "bin", "lib/a.txt"] {
            std::os::unix::fs::chown(copy.path().join(path), Some(4242), Some(4343)).expect("chown");
        }
    }
    let other = build_bundle(copy.path(), &limits).expect("builds");
    assert_eq!(other.summary.digest(), once.summary.digest());
    assert_eq!(other.bytes, once.bytes);

    // A change of content, of an exec bit or of a name changes the digest.
    set_mode(&copy.path().join("server.py"), 0o700);
    let exec = build_bundle(copy.path(), &limits).expect("builds");
    assert_ne!(exec.summary.sha256, once.summary.sha256);
    fs::write(copy.path().join("lib/a.txt"), b"b").expect("w");
    let content = build_bundle(copy.path(), &limits).expect("builds");
    assert_ne!(content.summary.sha256, exec.summary.sha256);
}

#[test]
fn the_unpacker_accepts_what_the_builder_makes() {
    let dir = tempfile::tempdir().expect("tempdir");
    make_tree(dir.path(), false);
    // A path long enough to need a GNU long-name record.
    let long = dir.path().join("lib").join("n".repeat(200));
    fs::write(&long, b"long").expect("w");
    let bundle = build_bundle(dir.path(), &UnpackLimits::default()).expect("builds");

    let out = tempfile::tempdir().expect("tempdir");
    let dest = out.path().join("pkg");
    let summary = unpack_bundle(&bundle.bytes[..], &dest, &UnpackLimits::default()).expect("unpacks");
    assert_eq!(summary.files, bundle.summary.files);
    assert_eq!(summary.directories, bundle.summary.directories);
    for (path, expected) in [
        ("server.py", &b"print('hi')\n"[..]),
        ("lib/a.txt", b"a"),
        ("sub/manifest.json", b"{\"nested\": true}"),
    ] {
        assert_eq!(fs::read(dest.join(path)).expect("read"), expected, "{path}");
    }
    assert_eq!(
        fs::read(dest.join("lib/deep/er/data.bin")).expect("read"),
        vec![7u8; 70_000]
    );
    assert_eq!(fs::read(dest.join("lib").join("n".repeat(200))).expect("read"), b"long");
    assert!(dest.join("empty").is_dir());
    assert!(!dest.join("manifest.json").exists());
    let mode = |p: &str| fs::metadata(dest.join(p)).expect("meta").permissions().mode() & 0o7777;
    assert_eq!(mode("bin/run"), 0o755);
    assert_eq!(mode("server.py"), 0o644);
    assert_eq!(mode("lib/deep"), 0o755);

    // And building the unpacked tree again gives the same bundle.
    let again = build_bundle(&dest, &UnpackLimits::default()).expect("builds");
    assert_eq!(again.bytes, bundle.bytes);
}

fn refused(dir: &Path) -> BundleError {
    build_bundle(dir, &UnpackLimits::default()).expect_err("must be refused")
}

#[test]
fn links_fifos_and_sockets_are_refused_by_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(dir.path().join("a"), b"a").expect("w");
    fs::create_dir(dir.path().join("sub")).expect("mkdir");
    std::os::unix::fs::symlink("/etc/passwd", dir.path().join("sub/link")).expect("symlink");
    match refused(dir.path()) {
        BundleError::NotFileOrDirectory { path, what } => {
            assert_eq!(path, dir.path().join("sub/link"));
            assert_eq!(what, "a symbolic link");
        }
        other => panic!("{other}"),
    }
    fs::remove_file(dir.path().join("sub/link")).expect("rm");

    // A link to a directory is refused, not walked.
    std::os::unix::fs::symlink("/", dir.path().join("root")).expect("symlink");
    assert!(matches!(
        refused(dir.path()),
        BundleError::NotFileOrDirectory {
            what: "a symbolic link",
            ..
        }
    ));
    fs::remove_file(dir.path().join("root")).expect("rm");

    rustix::fs::mknodat(
        rustix::fs::CWD,
        dir.path().join("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .expect("mkfifo");
    let err = refused(dir.path());
    assert!(
        matches!(&err, BundleError::NotFileOrDirectory { what: "a fifo", path } if path.ends_with("fifo")),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("fifo") && text.contains("regular files and directories"),
        "{text}"
    );
    fs::remove_file(dir.path().join("fifo")).expect("rm");

    let _socket = std::os::unix::net::UnixListener::bind(dir.path().join("sock")).expect("bind");
    assert!(matches!(
        refused(dir.path()),
        BundleError::NotFileOrDirectory { what: "a socket", .. }
    ));
    fs::remove_file(dir.path().join("sock")).expect("rm");

    // A hard-linked file is just a file: its bytes go in twice.
    fs::hard_link(dir.path().join("a"), dir.path().join("b")).expect("link");
    let bundle = build_bundle(dir.path(), &UnpackLimits::default()).expect("builds");
    assert_eq!(bundle.summary.files, 2);

    // The directory itself must be a directory, not a link to one.
    let link = tempfile::tempdir().expect("tempdir");
    std::os::unix::fs::symlink(dir.path(), link.path().join("pkg")).expect("symlink");
    assert!(matches!(
        refused(&link.path().join("pkg")),
        BundleError::NotFileOrDirectory { .. }
    ));
}

#[test]
fn what_the_unpacker_would_refuse_is_refused_when_building() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(dir.path().join(std::ffi::OsStr::from_bytes(b"caf\xe9")), b"x").expect("w");
    assert!(matches!(refused(dir.path()), BundleError::NotUtf8(_)));

    let dir = tempfile::tempdir().expect("tempdir");
    for i in 0..4 {
        fs::write(dir.path().join(format!("f{i}")), b"12345").expect("w");
    }
    let few = UnpackLimits {
        max_entries: 3,
        ..UnpackLimits::default()
    };
    assert!(matches!(
        build_bundle(dir.path(), &few),
        Err(BundleError::OverCap { max: 3, .. })
    ));
    let small = UnpackLimits {
        max_total_bytes: 19,
        max_file_bytes: 19,
        ..UnpackLimits::default()
    };
    let err = build_bundle(dir.path(), &small).expect_err("over the total");
    assert!(matches!(err, BundleError::OverCap { max: 19, .. }), "{err}");
    assert!(err.to_string().contains("--max-bundle-size"), "{err}");
    let shallow = UnpackLimits {
        max_depth: 2,
        ..UnpackLimits::default()
    };
    fs::create_dir_all(dir.path().join("a/b")).expect("mkdir");
    fs::write(dir.path().join("a/b/c"), b"x").expect("w");
    assert!(matches!(
        build_bundle(dir.path(), &shallow),
        Err(BundleError::PathOverCap { .. })
    ));
}

#[test]
fn a_missing_directory_is_an_error_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nope");
    let err = refused(&missing);
    assert!(err.to_string().contains("nope"), "{err}");
    // And an unpack of nothing built leaves nothing.
    assert!(matches!(
        unpack_bundle(&b""[..], &dir.path().join("out"), &UnpackLimits::default()),
        Err(UnpackError::Malformed(_))
    ));
    assert!(!dir.path().join("out").exists());
}
