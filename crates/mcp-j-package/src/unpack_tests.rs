use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::*;

/// One entry of a hand-made archive; names are raw bytes so that every shape can be made.
struct Raw<'a> {
    name: &'a [u8],
    kind: tar::EntryType,
    mode: u32,
    data: &'a [u8],
    link: &'a [u8],
}

fn file(name: &str, data: &'static [u8]) -> Raw<'static> {
    Raw {
        name: name.as_bytes().to_vec().leak(),
        kind: tar::EntryType::Regular,
        mode: 0o644,
        data,
        link: b"",
    }
}

fn dir(name: &str) -> Raw<'static> {
    Raw {
        name: name.as_bytes().to_vec().leak(),
        kind: tar::EntryType::Directory,
        mode: 0o755,
        data: b"",
        link: b"",
    }
}

fn of_kind(name: &str, kind: tar::EntryType, link: &'static [u8]) -> Raw<'static> {
    Raw {
        name: name.as_bytes().to_vec().leak(),
        kind,
        mode: 0o644,
        data: b"",
        link,
    }
}

fn header_for(entry: &Raw<'_>) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    let gnu = header.as_gnu_mut().expect("a GNU header");
    gnu.name[..entry.name.len()].copy_from_slice(entry.name);
    gnu.linkname[..entry.link.len()].copy_from_slice(entry.link);
    header.set_entry_type(entry.kind);
    header.set_mode(entry.mode);
    header.set_size(entry.data.len() as u64);
    header.set_mtime(1_234_567_890);
    header.set_cksum();
    header
}

/// The tar bytes of `entries`, written header by header (no checks of tar-rs in the way).
fn tar_of(entries: &[Raw<'_>]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        builder.append(&header_for(entry), entry.data).expect("append");
    }
    builder.into_inner().expect("finish tar")
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).expect("gzip");
    encoder.finish().expect("gzip finish")
}

fn targz(entries: &[Raw<'_>]) -> Vec<u8> {
    gzip(&tar_of(entries))
}

/// A sandbox for one test: `base/parent/out` is the destination; `base/outside` holds a
/// file that must survive; `base/parent/sibling` too.
struct Scene {
    _guard: tempfile::TempDir,
    base: PathBuf,
    parent: PathBuf,
    dest: PathBuf,
}

fn scene() -> Scene {
    let guard = tempfile::tempdir().expect("tempdir");
    let base = guard.path().to_path_buf();
    let parent = base.join("parent");
    std::fs::create_dir(&parent).expect("parent");
    std::fs::write(parent.join("sibling"), b"keep").expect("sibling");
    std::fs::create_dir(base.join("outside")).expect("outside");
    std::fs::write(base.join("outside/victim"), b"original").expect("victim");
    Scene {
        dest: parent.join("out"),
        _guard: guard,
        base,
        parent,
    }
}

/// Every path under `root` with its kind, size and mode: the before/after picture.
fn listing(root: &Path) -> BTreeMap<PathBuf, (String, u64, u32)> {
    let mut out = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for item in std::fs::read_dir(&dir).expect("read_dir") {
            let path = item.expect("entry").path();
            let meta = std::fs::symlink_metadata(&path).expect("lstat");
            let kind = format!("{:?}", meta.file_type());
            if meta.is_dir() {
                pending.push(path.clone());
            }
            out.insert(
                path.strip_prefix(root).expect("under root").to_path_buf(),
                (kind, meta.len(), meta.permissions().mode()),
            );
        }
    }
    out
}

/// Unpacks `bundle` and asserts it was refused with nothing left anywhere under `base`.
fn refused(bundle: &[u8], limits: &UnpackLimits) -> UnpackError {
    let scene = scene();
    let before = listing(&scene.base);
    let err = unpack_bundle(bundle, &scene.dest, limits).expect_err("must be refused");
    assert_eq!(listing(&scene.base), before, "something was left behind: {err}");
    assert!(!scene.dest.exists());
    assert_eq!(
        std::fs::read(scene.base.join("outside/victim")).expect("victim"),
        b"original"
    );
    // Nothing next to the base either (a `..` that climbed two levels).
    let grand = scene.base.parent().expect("base has a parent").to_path_buf();
    assert!(!grand.join("escape").exists());
    err
}

fn refusal(bundle: &[u8], limits: &UnpackLimits) -> (String, Refusal) {
    match refused(bundle, limits) {
        UnpackError::Refused { entry, reason } => (entry, reason),
        other => panic!("expected a refusal of an entry, got {other}"),
    }
}

#[test]
fn a_plain_bundle_unpacks_with_normalised_modes() {
    let scene = scene();
    let mut exe = file("bin/run", b"#!/bin/sh\n");
    exe.mode = 0o4775; // setuid and group-writable in the archive: only the x bit survives
    let mut plain = file("data/x.txt", b"hello");
    plain.mode = 0o666;
    let mut odd_dir = dir("data/");
    odd_dir.mode = 0o1777;
    let mut user_exe = file("tool", b"t");
    user_exe.mode = 0o100;
    let bundle = targz(&[dir("./"), dir("bin/"), exe, odd_dir, plain, user_exe]);
    let summary = unpack_bundle(&bundle[..], &scene.dest, &UnpackLimits::default()).expect("unpacks");
    assert_eq!(
        summary,
        UnpackSummary {
            files: 3,
            directories: 2,
            bytes: 10 + 5 + 1
        }
    );
    let mode = |p: &str| {
        std::fs::symlink_metadata(scene.dest.join(p))
            .expect("exists")
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(mode(""), 0o755);
    assert_eq!(mode("bin"), 0o755);
    assert_eq!(mode("data"), 0o755);
    assert_eq!(mode("bin/run"), 0o755);
    assert_eq!(mode("data/x.txt"), 0o644);
    assert_eq!(mode("tool"), 0o755);
    assert_eq!(std::fs::read(scene.dest.join("data/x.txt")).expect("read"), b"hello");
    // The archive's mtime (2009) is not kept.
    let mtime = std::fs::metadata(scene.dest.join("data/x.txt"))
        .expect("meta")
        .modified()
        .expect("mtime");
    assert!(mtime > std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000));
    // Only the destination was added to the parent: no fresh directory left over.
    let names: Vec<_> = std::fs::read_dir(&scene.parent)
        .expect("parent")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn implicit_parents_are_made_and_may_be_listed_later() {
    let scene = scene();
    let bundle = targz(&[file("a/b/c.txt", b"c"), dir("a/b/"), dir("a")]);
    let summary = unpack_bundle(&bundle[..], &scene.dest, &UnpackLimits::default()).expect("unpacks");
    assert_eq!(summary.directories, 2);
    assert_eq!(std::fs::read(scene.dest.join("a/b/c.txt")).expect("read"), b"c");
}

#[test]
fn parent_components_are_refused() {
    for name in ["../escape", "a/../../escape", "./../escape", "a/.."] {
        let bundle = targz(&[dir("a/"), file(name, b"x")]);
        let (entry, reason) = refusal(&bundle, &UnpackLimits::default());
        assert_eq!(entry, name);
        assert_eq!(reason, Refusal::ParentComponent, "{name}");
    }
}

#[test]
fn absolute_paths_are_refused() {
    let scene = scene();
    let target = scene.base.join("outside/absolute");
    let name = target.to_str().expect("utf-8 temp path");
    let bundle = targz(&[file(name, b"x")]);
    let (entry, reason) = refusal(&bundle, &UnpackLimits::default());
    assert_eq!(entry, name);
    assert_eq!(reason, Refusal::AbsolutePath);
    assert!(!target.exists());
    let (_, reason) = refusal(&targz(&[dir("/")]), &UnpackLimits::default());
    assert_eq!(reason, Refusal::AbsolutePath);
}

#[test]
fn a_symlink_and_a_file_through_it_are_refused() {
    let scene = scene();
    let outside = scene.base.join("outside");
    let link: &'static [u8] = outside.to_str().expect("utf-8").as_bytes().to_vec().leak();
    let bundle = targz(&[
        file("ok", b"fine"),
        of_kind("link", tar::EntryType::Symlink, link),
        file("link/pwned", b"x"),
    ]);
    let (entry, reason) = refusal(&bundle, &UnpackLimits::default());
    assert_eq!((entry.as_str(), reason), ("link", Refusal::Symlink));
    assert!(!outside.join("pwned").exists());
    let relative = targz(&[of_kind("up", tar::EntryType::Symlink, b"../..")]);
    assert_eq!(refusal(&relative, &UnpackLimits::default()).1, Refusal::Symlink);
}

#[test]
fn a_hardlink_is_refused() {
    let bundle = targz(&[file("a", b"x"), of_kind("b", tar::EntryType::Link, b"/etc/passwd")]);
    assert_eq!(
        refusal(&bundle, &UnpackLimits::default()),
        ("b".to_owned(), Refusal::HardLink)
    );
    let inside = targz(&[file("a", b"x"), of_kind("b", tar::EntryType::Link, b"a")]);
    assert_eq!(refusal(&inside, &UnpackLimits::default()).1, Refusal::HardLink);
}

#[test]
fn devices_fifos_and_other_types_are_refused() {
    let cases = [
        (tar::EntryType::Char, Refusal::CharDevice),
        (tar::EntryType::Block, Refusal::BlockDevice),
        (tar::EntryType::Fifo, Refusal::Fifo),
        (tar::EntryType::Continuous, Refusal::OtherType('7')),
        (tar::EntryType::new(b'Z'), Refusal::OtherType('Z')),
    ];
    for (kind, expected) in cases {
        let bundle = targz(&[file("a", b"x"), of_kind("dev", kind, b"")]);
        assert_eq!(refusal(&bundle, &UnpackLimits::default()), ("dev".to_owned(), expected));
    }
}

#[test]
fn duplicates_are_refused() {
    let cases: [Vec<Raw<'static>>; 5] = [
        vec![file("a", b"1"), file("a", b"2")],
        vec![file("d/a", b"1"), file("d/./a", b"2")],
        vec![file("d//a", b"1"), file("d/a", b"2")],
        vec![dir("d"), dir("d/")],
        vec![file("a", b"1"), dir("a/")],
    ];
    for entries in cases {
        let (_, reason) = refusal(&targz(&entries), &UnpackLimits::default());
        assert_eq!(reason, Refusal::Duplicate);
    }
}

#[test]
fn a_path_through_a_file_is_refused() {
    let bundle = targz(&[file("a", b"1"), file("a/b", b"2")]);
    assert_eq!(
        refusal(&bundle, &UnpackLimits::default()),
        ("a/b".to_owned(), Refusal::ThroughFile("a".to_owned()))
    );
    let over_dir = targz(&[file("a/b", b"1"), file("a", b"2")]);
    assert_eq!(
        refusal(&over_dir, &UnpackLimits::default()).1,
        Refusal::FileOverDirectory
    );
}

#[test]
fn odd_shapes_of_regular_entries_are_refused() {
    let mut with_data = dir("d/");
    with_data.data = b"hidden";
    assert_eq!(
        refusal(&targz(&[with_data]), &UnpackLimits::default()).1,
        Refusal::DirectoryWithData(6)
    );
    assert_eq!(
        refusal(&targz(&[file("f/", b"x")]), &UnpackLimits::default()).1,
        Refusal::FileWithTrailingSlash
    );
    assert_eq!(
        refusal(&targz(&[file("./", b"x")]), &UnpackLimits::default()).1,
        Refusal::EmptyPath
    );
    let mut latin1 = file("x", b"x");
    latin1.name = b"caf\xe9";
    assert_eq!(refusal(&targz(&[latin1]), &UnpackLimits::default()).1, Refusal::NotUtf8);
}

#[test]
fn paths_over_the_length_and_depth_caps_are_refused() {
    let limits = UnpackLimits {
        max_path_bytes: 16,
        max_depth: 3,
        ..UnpackLimits::default()
    };
    assert_eq!(
        refusal(&targz(&[file("abcdefgh/abcdefgh", b"x")]), &limits).1,
        Refusal::PathTooLong { len: 18, max: 16 }
    );
    assert_eq!(
        refusal(&targz(&[file("a/b/c/d", b"x")]), &limits).1,
        Refusal::PathTooDeep { depth: 4, max: 3 }
    );
    // Exactly at the caps is fine.
    let scene = scene();
    unpack_bundle(&targz(&[file("a/b/c", b"x")])[..], &scene.dest, &limits).expect("at the cap");
    // A long name goes through a GNU long-name record; one component over NAME_MAX is refused.
    let long = format!("{}/x", "n".repeat(256));
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(1);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    builder.append_data(&mut header, &long, &b"x"[..]).expect("append");
    let bundle = gzip(&builder.into_inner().expect("tar"));
    assert_eq!(
        refusal(&bundle, &UnpackLimits::default()).1,
        Refusal::ComponentTooLong { len: 256 }
    );
}

#[test]
fn too_many_entries_are_refused() {
    let limits = UnpackLimits {
        max_entries: 3,
        ..UnpackLimits::default()
    };
    let three = [dir("d"), file("d/a", b"1"), file("d/b", b"2")];
    let scene = scene();
    unpack_bundle(&targz(&three)[..], &scene.dest, &limits).expect("three entries are fine");
    let four = targz(&[dir("d"), file("d/a", b"1"), file("d/b", b"2"), file("d/c", b"3")]);
    assert_eq!(
        refusal(&four, &limits),
        ("d/c".to_owned(), Refusal::TooManyEntries { count: 4, max: 3 })
    );
    // Directories the archive only implies count too: two entries, four things made.
    let implied = targz(&[file("a/b/c", b"1"), file("x", b"2")]);
    assert_eq!(
        refusal(&implied, &limits),
        ("x".to_owned(), Refusal::TooManyEntries { count: 4, max: 3 })
    );
}

#[test]
fn files_over_the_file_and_total_caps_are_refused() {
    let limits = UnpackLimits {
        max_total_bytes: 10,
        max_file_bytes: 6,
        ..UnpackLimits::default()
    };
    assert_eq!(
        refusal(&targz(&[file("big", b"1234567")]), &limits).1,
        Refusal::FileTooLarge { size: 7, max: 6 }
    );
    let (entry, reason) = refusal(
        &targz(&[file("a", b"123456"), file("b", b"1234"), file("c", b"1")]),
        &limits,
    );
    assert_eq!((entry.as_str(), reason), ("c", Refusal::TotalTooLarge { max: 10 }));
    let scene = scene();
    unpack_bundle(
        &targz(&[file("a", b"123456"), file("b", b"1234")])[..],
        &scene.dest,
        &limits,
    )
    .expect("exactly the total is fine");
    // INTERFACE's default: 512M unpacked, 100k entries; `--max-bundle-size` sets both size caps.
    let configured = UnpackLimits::with_max_total_bytes(1 << 20);
    assert_eq!(
        (configured.max_total_bytes, configured.max_file_bytes),
        (1 << 20, 1 << 20)
    );
    assert_eq!(UnpackLimits::default().max_total_bytes, 512 * 1024 * 1024);
    assert_eq!(UnpackLimits::default().max_entries, 100_000);
}

/// Counts the compressed bytes the unpacker pulled.
struct Counting<'a> {
    inner: &'a [u8],
    taken: &'a Cell<usize>,
}

impl Read for Counting<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.taken.set(self.taken.get() + n);
        Ok(n)
    }
}

/// `prefix`, `zeros` zero bytes, `suffix`, gzipped without holding the zeros in memory.
fn gzip_with_zeros(prefix: &[u8], zeros: u64, suffix: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(prefix).expect("gzip");
    io::copy(&mut io::repeat(0).take(zeros), &mut encoder).expect("gzip");
    encoder.write_all(suffix).expect("gzip");
    encoder.finish().expect("gzip finish")
}

#[test]
fn a_gzip_bomb_stops_at_the_cap_while_streaming() {
    let limits = UnpackLimits {
        max_total_bytes: 1 << 20,
        max_file_bytes: 1 << 20,
        max_entries: 8,
        ..UnpackLimits::default()
    };
    // A GNU long-name record of 192 MiB of zeros (`tar` would read it all into memory),
    // then a file; about 190 KiB compressed.
    let expanded = 192u64 << 20;
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::GNULongName);
    header.set_size(expanded);
    header.set_cksum();
    let bomb = gzip_with_zeros(header.as_bytes(), expanded, &tar_of(&[file("x", b"x")]));
    assert!(bomb.len() < 256 * 1024, "the bomb is small: {} bytes", bomb.len());

    let scene = scene();
    let before = listing(&scene.base);
    let taken = Cell::new(0);
    let err = unpack_bundle(
        Counting {
            inner: &bomb,
            taken: &taken,
        },
        &scene.dest,
        &limits,
    )
    .expect_err("a bomb");
    assert!(
        matches!(err, UnpackError::StreamTooLarge { max } if max == limits.max_stream_bytes()),
        "{err}"
    );
    assert_eq!(listing(&scene.base), before);
    // Stopped while streaming: most of the compressed input was never read.
    assert!(
        taken.get() < bomb.len() / 4,
        "read {} of {} compressed bytes",
        taken.get(),
        bomb.len()
    );

    // A file that declares more than the cap is refused from its header, before its data.
    let mut big = tar::Header::new_gnu();
    big.set_entry_type(tar::EntryType::Regular);
    let declared = 8u64 << 20;
    big.set_size(declared);
    big.set_mode(0o644);
    big.as_gnu_mut().expect("gnu").name[..3].copy_from_slice(b"big");
    big.set_cksum();
    let big_file = gzip_with_zeros(big.as_bytes(), declared + 1024, b"");
    assert_eq!(
        refusal(&big_file, &limits),
        (
            "big".to_owned(),
            Refusal::FileTooLarge {
                size: declared,
                max: 1 << 20
            }
        )
    );
}

#[test]
fn many_small_files_past_the_total_are_refused_while_streaming() {
    let limits = UnpackLimits {
        max_total_bytes: 100 * 1024,
        max_file_bytes: 100 * 1024,
        ..UnpackLimits::default()
    };
    let data: &'static [u8] = vec![0u8; 40 * 1024].leak();
    let entries: Vec<Raw<'static>> = (0..50).map(|i| file(&format!("f{i}"), data)).collect();
    let bundle = targz(&entries);
    assert!(bundle.len() < 100 * 1024);
    let (entry, reason) = refusal(&bundle, &limits);
    assert_eq!(entry, "f2");
    assert_eq!(reason, Refusal::TotalTooLarge { max: 100 * 1024 });
}

#[test]
fn garbage_and_truncated_archives_are_malformed_and_leave_nothing() {
    assert!(matches!(
        refused(b"not a gzip stream at all", &UnpackLimits::default()),
        UnpackError::Malformed(_)
    ));
    let bundle = targz(&[file("a", b"some bytes here")]);
    let raw = tar_of(&[file("a", b"some bytes here")]);
    let truncated = gzip(&raw[..512 + 4]);
    assert!(matches!(
        refused(&truncated, &UnpackLimits::default()),
        UnpackError::Malformed(_)
    ));
    assert!(matches!(
        refused(&bundle[..bundle.len() / 2], &UnpackLimits::default()),
        UnpackError::Malformed(_)
    ));
}

#[test]
fn an_existing_destination_is_never_replaced() {
    let scene = scene();
    std::fs::create_dir(&scene.dest).expect("dest");
    std::fs::write(scene.dest.join("mine"), b"keep").expect("mine");
    let before = listing(&scene.base);
    let err = unpack_bundle(&targz(&[file("a", b"x")])[..], &scene.dest, &UnpackLimits::default()).expect_err("exists");
    assert!(matches!(err, UnpackError::DestinationExists(_)), "{err}");
    assert_eq!(listing(&scene.base), before);
    // A symlink at the destination is not followed either.
    let other = scene.parent.join("link");
    std::os::unix::fs::symlink(scene.base.join("outside"), &other).expect("symlink");
    let err = unpack_bundle(&targz(&[file("a", b"x")])[..], &other, &UnpackLimits::default()).expect_err("exists");
    assert!(matches!(err, UnpackError::DestinationExists(_)), "{err}");
    assert!(!scene.base.join("outside/a").exists());
}

#[test]
fn errors_name_the_entry_the_reason_and_the_fix() {
    let err = refused(
        &targz(&[of_kind("lib/link", tar::EntryType::Symlink, b"/etc")]),
        &UnpackLimits::default(),
    );
    let text = err.to_string();
    assert!(text.contains("`lib/link`"), "{text}");
    assert!(text.contains("a symbolic link"), "{text}");
    assert!(text.contains("mcp-j push"), "{text}");
    let limits = UnpackLimits::with_max_total_bytes(4);
    let text = refused(&targz(&[file("big", b"12345")]), &limits).to_string();
    assert!(text.contains("`big`") && text.contains("5 bytes (at most 4)"), "{text}");
    assert!(text.contains("--max-bundle-size"), "{text}");
}

#[test]
fn pax_global_headers_are_passed_over() {
    let scene = scene();
    let mut global = of_kind("pax_global_header", tar::EntryType::XGlobalHeader, b"");
    global.data = b"52 comment=0123456789012345678901234567890123456789\n";
    let bundle = targz(&[global, file("a", b"x")]);
    let summary = unpack_bundle(&bundle[..], &scene.dest, &UnpackLimits::default()).expect("unpacks");
    assert_eq!(summary.files, 1);
    assert!(!scene.dest.join("pax_global_header").exists());
}

#[test]
fn a_path_smuggled_in_pax_or_gnu_long_name_records_is_checked() {
    // A PAX `path` record overrides the next header's harmless name.
    let record = "18 path=../escape\n";
    assert_eq!(record.len(), 18);
    let mut pax = of_kind("PaxHeader", tar::EntryType::XHeader, b"");
    pax.data = record.as_bytes();
    let bundle = targz(&[pax, file("harmless", b"x")]);
    assert_eq!(
        refusal(&bundle, &UnpackLimits::default()),
        ("../escape".to_owned(), Refusal::ParentComponent)
    );

    // A GNU long name (`L` record) that climbs out.
    let long = format!("{}/../../../escape", "d".repeat(120));
    let mut record = tar::Header::new_gnu();
    record.set_entry_type(tar::EntryType::GNULongName);
    record.set_size(long.len() as u64 + 1);
    record.set_cksum();
    let mut raw = Vec::new();
    raw.extend_from_slice(record.as_bytes());
    raw.extend_from_slice(long.as_bytes());
    raw.resize(raw.len().div_ceil(512) * 512, 0);
    raw.extend_from_slice(&tar_of(&[file("harmless", b"x")]));
    let (entry, reason) = refusal(&gzip(&raw), &UnpackLimits::default());
    assert_eq!((entry, reason), (long, Refusal::ParentComponent));
}

type Normalised = Result<Vec<String>, Refusal>;

#[test]
fn path_normalisation_table() {
    let limits = UnpackLimits {
        max_path_bytes: 12,
        max_depth: 3,
        ..UnpackLimits::default()
    };
    let ok = |parts: &[&str]| Ok(parts.iter().map(|p| (*p).to_owned()).collect::<Vec<_>>());
    let cases: [(&[u8], Normalised); 18] = [
        (b"a", ok(&["a"])),
        (b"a/b", ok(&["a", "b"])),
        (b"./a/./b/", ok(&["a", "b"])),
        (b"a//b", ok(&["a", "b"])),
        (b"./", ok(&[])),
        (b".", ok(&[])),
        (b"..a/b..", ok(&["..a", "b.."])),
        (b"...", ok(&["..."])),
        (b"a b/\xc3\xa9", ok(&["a b", "é"])),
        (b"", Err(Refusal::EmptyPath)),
        (b"/a", Err(Refusal::AbsolutePath)),
        (b"//a", Err(Refusal::AbsolutePath)),
        (b"..", Err(Refusal::ParentComponent)),
        (b"a/../b", Err(Refusal::ParentComponent)),
        (b"a/\xff", Err(Refusal::NotUtf8)),
        (b"abcdef/ghijkl", Err(Refusal::PathTooLong { len: 14, max: 12 })),
        (b"a/b/c/d", Err(Refusal::PathTooDeep { depth: 4, max: 3 })),
        (b"a/b/c/", ok(&["a", "b", "c"])),
    ];
    for (raw, expected) in cases {
        assert_eq!(
            normalise_path(raw, &limits),
            expected,
            "{}",
            String::from_utf8_lossy(raw)
        );
    }
    let long_name = "x".repeat(256);
    assert_eq!(
        normalise_path(long_name.as_bytes(), &UnpackLimits::default()),
        Err(Refusal::ComponentTooLong { len: 256 })
    );
    let just_fits = "x".repeat(255);
    assert!(normalise_path(just_fits.as_bytes(), &UnpackLimits::default()).is_ok());
}
