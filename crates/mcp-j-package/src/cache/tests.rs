use std::process::{Child, Command};
use std::time::Instant;

use serde_json::json;

use super::*;

/// A fixed clock: tests pass times, the cache never reads one.
fn at(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000 + seconds)
}

const HOUR: u64 = 3600;
const DAY: u64 = 24 * HOUR;

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn store_bytes(cache: &Cache, bytes: &[u8], kind: BlobKind, now: SystemTime) -> Digest {
    let digest = digest_bytes(bytes);
    let stored = cache
        .store(&digest, kind, bytes.len() as u64, now, || Ok(bytes))
        .unwrap();
    assert!(stored.fetched);
    digest
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Nothing of a refused store is left: no blob, no metadata, no temporary file.
fn assert_nothing_kept(root: &Path, cache: &Cache, digest: &Digest) {
    assert!(!cache.contains(digest));
    assert!(!cache.blob_path(digest).exists());
    assert!(!cache.meta_path(digest).exists());
    assert_eq!(files_in(&root.join("v1/blobs/sha256")), Vec::<String>::new());
    assert_eq!(files_in(&root.join("v1/tmp")), Vec::<String>::new());
    assert!(cache.list().unwrap().is_empty());
}

#[test]
fn default_root_follows_xdg() {
    let cases: [(Option<&str>, Option<&str>, Option<&str>); 6] = [
        (Some("/x/cache"), Some("/home/u"), Some("/x/cache/mcp-j")),
        (None, Some("/home/u"), Some("/home/u/.cache/mcp-j")),
        (Some("relative"), Some("/home/u"), Some("/home/u/.cache/mcp-j")),
        (Some("/x"), None, Some("/x/mcp-j")),
        (None, None, None),
        (None, Some("rel"), None),
    ];
    for (xdg, home, expected) in cases {
        assert_eq!(
            default_root(xdg.map(Path::new), home.map(Path::new)),
            expected.map(PathBuf::from),
            "{xdg:?} {home:?}"
        );
    }
}

#[test]
fn a_stored_blob_is_found_verified_and_not_fetched_again() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let bytes = data(10_000, 1);
    let digest = store_bytes(&cache, &bytes, BlobKind::Bundle, at(0));
    let path = dir.path().join("v1/blobs/sha256").join(digest.hex());
    assert_eq!(cache.blob_path(&digest), path);
    assert_eq!(fs::read(&path).unwrap(), bytes);
    assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o444);

    let again = cache
        .store(&digest, BlobKind::Bundle, 1, at(10), || -> io::Result<&[u8]> {
            panic!("a cached blob is not fetched again")
        })
        .unwrap();
    assert_eq!(
        again,
        Stored {
            path: path.clone(),
            size: 10_000,
            fetched: false
        }
    );

    let mut blob = cache.open_verified(&digest, at(20)).unwrap().unwrap();
    let mut read = Vec::new();
    blob.file.read_to_end(&mut read).unwrap();
    assert_eq!(read, bytes, "the file is handed back at its first byte");
    assert_eq!(blob.size, 10_000);

    assert_eq!(
        cache.list().unwrap(),
        vec![BlobEntry {
            digest: digest.clone(),
            size: 10_000,
            kind: Some(BlobKind::Bundle),
            last_used: at(20)
        }]
    );
    let absent = digest_bytes(b"absent");
    assert!(cache.open_verified(&absent, at(0)).unwrap().is_none());
}

#[test]
fn a_mismatch_keeps_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let expected = digest_bytes(b"what the resolve answer names");
    let error = cache
        .store(&expected, BlobKind::Bundle, 1000, at(0), || {
            Ok(&b"what the registry sent"[..])
        })
        .unwrap_err();
    match &error {
        CacheError::Mismatch {
            expected: e,
            actual,
            size,
        } => {
            assert_eq!(e, &expected);
            assert_eq!(actual, &digest_bytes(b"what the registry sent"));
            assert_eq!(*size, 22);
        }
        other => panic!("{other:?}"),
    }
    assert!(error.to_string().contains("nothing was kept"), "{error}");
    assert_nothing_kept(dir.path(), &cache, &expected);
}

#[test]
fn too_many_bytes_or_a_failed_fetch_keep_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let bytes = data(5000, 2);
    let digest = digest_bytes(&bytes);

    let error = cache
        .store(&digest, BlobKind::Bundle, 4999, at(0), || Ok(&bytes[..]))
        .unwrap_err();
    assert!(matches!(error, CacheError::TooLarge { cap: 4999, .. }), "{error:?}");
    assert_nothing_kept(dir.path(), &cache, &digest);

    let error = cache
        .store(&digest, BlobKind::Bundle, 5000, at(0), || -> io::Result<&[u8]> {
            Err(io::Error::new(io::ErrorKind::ConnectionRefused, "refused"))
        })
        .unwrap_err();
    assert!(matches!(error, CacheError::Fetch { .. }), "{error:?}");
    assert_nothing_kept(dir.path(), &cache, &digest);

    // A stream cut halfway.
    let cut = bytes[..2500].chain(Failing);
    let error = cache
        .store(&digest, BlobKind::Bundle, 5000, at(0), || Ok(cut))
        .unwrap_err();
    assert!(matches!(error, CacheError::Fetch { .. }), "{error:?}");
    assert_nothing_kept(dir.path(), &cache, &digest);

    // And then the right bytes at exactly the cap are stored.
    let stored = cache
        .store(&digest, BlobKind::Bundle, 5000, at(0), || Ok(&bytes[..]))
        .unwrap();
    assert_eq!(stored.size, 5000);
}

struct Failing;

impl Read for Failing {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Err(io::Error::new(io::ErrorKind::ConnectionReset, "reset"))
    }
}

#[test]
fn a_tampered_blob_is_refused_and_not_fetched_again() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let bytes = data(3000, 3);
    let digest = store_bytes(&cache, &bytes, BlobKind::Manifest, at(0));
    let path = cache.blob_path(&digest);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    let mut tampered = bytes.clone();
    tampered[1500] ^= 1;
    fs::write(&path, &tampered).unwrap();

    let error = cache.open_verified(&digest, at(1)).unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(&error, CacheError::Tampered { actual, .. } if *actual == digest_bytes(&tampered)),
        "{error:?}"
    );
    assert!(message.contains(&format!("mcp-j cache rm {digest}")), "{message}");
    assert!(message.contains(&path.display().to_string()), "{message}");

    let error = cache
        .store(&digest, BlobKind::Manifest, 3000, at(2), || -> io::Result<&[u8]> {
            panic!("a tampered blob is reported, not silently fetched again")
        })
        .unwrap_err();
    assert!(matches!(error, CacheError::Tampered { .. }), "{error:?}");
    assert_eq!(fs::read(&path).unwrap(), tampered, "left for the user to inspect");

    assert!(cache.remove(&digest).unwrap());
    assert!(cache.open_verified(&digest, at(3)).unwrap().is_none());
    store_bytes(&cache, &bytes, BlobKind::Manifest, at(4));
    assert!(cache.open_verified(&digest, at(5)).unwrap().is_some());
}

#[test]
fn remove_and_remove_all() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let a = store_bytes(&cache, b"a", BlobKind::Manifest, at(0));
    let b = store_bytes(&cache, b"b", BlobKind::Bundle, at(0));
    let key = AnswerKey {
        registry: "https://r.example".into(),
        package: "acme/x".into(),
        reference: "1.0".into(),
    };
    cache.save_answer(&key, &json!({}), at(0)).unwrap();

    assert!(cache.remove(&a).unwrap());
    assert!(!cache.remove(&a).unwrap(), "removing twice says it was not there");
    assert_eq!(
        cache.list().unwrap().iter().map(|e| &e.digest).collect::<Vec<_>>(),
        vec![&b]
    );
    assert!(!cache.lock_path(&a).exists(), "a removed blob's lock file goes too");
    assert!(cache.lock_path(&b).exists());

    assert_eq!(cache.remove_all().unwrap(), vec![b]);
    assert!(cache.list().unwrap().is_empty());
    assert!(cache.load_answer(&key, at(0), Duration::from_secs(DAY)).is_none());
}

#[test]
fn gc_removes_unreferenced_old_and_least_recently_used_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let manifest = store_bytes(&cache, &data(100, 1), BlobKind::Manifest, at(0));
    let bundle = store_bytes(&cache, &data(1000, 2), BlobKind::Bundle, at(0));
    let orphan_old = store_bytes(&cache, &data(200, 3), BlobKind::Bundle, at(0));
    let orphan_new = store_bytes(&cache, &data(300, 4), BlobKind::Bundle, at(10 * DAY));
    let install = store_bytes(&cache, &data(400, 5), BlobKind::Install, at(0));
    let answer = json!({
        "package": "acme/x",
        "resolved": {"version": "1.0", "manifest": {"digest": manifest}, "bundle": {"digest": bundle, "size_bytes": 1000}}
    });
    let key = AnswerKey {
        registry: "https://r.example".into(),
        package: "acme/x".into(),
        reference: "1.0".into(),
    };
    cache.save_answer(&key, &answer, at(0)).unwrap();
    // A download killed long ago, and one in progress.
    let stale = dir.path().join("v1/tmp/sha256-dead.x");
    File::create(&stale).unwrap().set_modified(at(0)).unwrap();
    let live = dir.path().join("v1/tmp/sha256-live.x");
    File::create(&live).unwrap().set_modified(at(10 * DAY)).unwrap();

    let now = at(10 * DAY);
    let report = cache.gc(GcOptions::default(), now).unwrap();
    assert_eq!(
        report,
        GcReport {
            removed: vec![orphan_old.clone()],
            freed: 200
        }
    );
    assert!(!stale.exists());
    assert!(live.exists());
    assert!(cache.contains(&orphan_new), "younger than the grace period");
    assert!(
        cache.contains(&install),
        "installs are not referenced by resolve answers"
    );

    // By age: everything not used for 5 days, referenced or not.
    cache.open_verified(&manifest, at(9 * DAY)).unwrap().unwrap();
    let report = cache
        .gc(
            GcOptions {
                max_age: Some(Duration::from_secs(5 * DAY)),
                max_size: None,
            },
            now,
        )
        .unwrap();
    let mut expected = vec![bundle.clone(), install.clone()];
    expected.sort();
    assert_eq!(
        report,
        GcReport {
            removed: expected,
            freed: 1400
        }
    );
    let left: Vec<_> = cache.list().unwrap().into_iter().map(|e| e.digest).collect();
    let mut expected_left = vec![manifest.clone(), orphan_new.clone()];
    expected_left.sort();
    assert_eq!(left, expected_left);

    // By size: least recently used first (the manifest, used at day 9, before orphan_new at day 10).
    let report = cache
        .gc(
            GcOptions {
                max_age: None,
                max_size: Some(300),
            },
            now,
        )
        .unwrap();
    assert_eq!(
        report,
        GcReport {
            removed: vec![manifest],
            freed: 100
        }
    );
    let report = cache
        .gc(
            GcOptions {
                max_age: None,
                max_size: Some(0),
            },
            now,
        )
        .unwrap();
    assert_eq!(
        report,
        GcReport {
            removed: vec![orphan_new],
            freed: 300
        }
    );
    assert!(cache.list().unwrap().is_empty());
    assert_eq!(cache.gc(GcOptions::default(), now).unwrap(), GcReport::default());
}

#[test]
fn cached_resolve_answers_follow_the_offline_rule() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let max_age = Duration::from_secs(7 * DAY);
    let key = |reference: &str| AnswerKey {
        registry: "https://r.example".into(),
        package: "acme/x".into(),
        reference: reference.into(),
    };
    cache.save_answer(&key("1.0"), &json!({"v": "1.0"}), at(0)).unwrap();
    cache.save_answer(&key("1.1"), &json!({"v": "1.1"}), at(DAY)).unwrap();
    let other_registry = AnswerKey {
        registry: "https://other.example".into(),
        ..key("2.0")
    };
    cache
        .save_answer(&other_registry, &json!({"v": "other"}), at(2 * DAY))
        .unwrap();
    let other_package = AnswerKey {
        package: "acme/y".into(),
        ..key("2.0")
    };
    cache
        .save_answer(&other_package, &json!({"v": "y"}), at(2 * DAY))
        .unwrap();

    let fresh = cache.load_answer(&key("1.0"), at(7 * DAY), max_age).unwrap();
    assert_eq!(fresh.answer, json!({"v": "1.0"}));
    assert_eq!(fresh.fetched_at, at(0));
    assert_eq!(fresh.age(at(7 * DAY)), max_age);
    assert!(
        cache.load_answer(&key("1.0"), at(7 * DAY + 1), max_age).is_none(),
        "one second too old"
    );
    assert!(
        cache.load_answer(&key("1.1"), at(0), max_age).is_none(),
        "from the future"
    );
    assert!(
        cache.load_answer(&key("9.9"), at(0), max_age).is_none(),
        "never fetched"
    );

    // Replacing an answer keeps the newest fetch.
    cache
        .save_answer(&key("1.0"), &json!({"v": "1.0 again"}), at(3 * DAY))
        .unwrap();
    assert_eq!(
        cache.load_answer(&key("1.0"), at(9 * DAY), max_age).map(|a| a.answer),
        Some(json!({"v": "1.0 again"}))
    );

    let answers = cache.answers_for("https://r.example", "acme/x").unwrap();
    let references: Vec<_> = answers.iter().map(|a| a.key.reference.as_str()).collect();
    assert_eq!(
        references,
        ["1.0", "1.1"],
        "newest fetch first, other registries and packages left out"
    );

    // A corrupt answer file is not an answer.
    fs::write(cache.answer_path(&key("1.1")), b"{not json").unwrap();
    assert!(cache.load_answer(&key("1.1"), at(DAY), max_age).is_none());
}

/// The environment that turns [`store_helper_process`] from a no-op into the helper.
const HELPER_ROOT: &str = "MCP_J_TEST_CACHE_HELPER_ROOT";
const HELPER_GO: &str = "MCP_J_TEST_CACHE_HELPER_GO";
const HELPER_RESULT: &str = "MCP_J_TEST_CACHE_HELPER_RESULT";
const SHARED_LEN: usize = 256 * 1024;

/// A source that hands out 4 KiB at a time with a pause, so two processes overlap.
struct Slow<'a> {
    data: &'a [u8],
}

impl Read for Slow<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        std::thread::sleep(Duration::from_millis(2));
        let n = buf.len().min(4096).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// Not a test by itself: run by [`two_processes_store_the_same_blob_once`] in a child
/// process (with [`HELPER_ROOT`] set), it waits for the go signal, stores the shared blob
/// through a slow source, and writes `fetched` or `found` to its result file.
#[test]
fn store_helper_process() {
    let (Some(root), Some(go), Some(result)) = (
        std::env::var_os(HELPER_ROOT),
        std::env::var_os(HELPER_GO),
        std::env::var_os(HELPER_RESULT),
    ) else {
        return;
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !Path::new(&go).exists() {
        assert!(Instant::now() < deadline, "no go signal");
        std::thread::sleep(Duration::from_millis(1));
    }
    let cache = Cache::open(&root).unwrap();
    let bytes = data(SHARED_LEN, 9);
    let digest = digest_bytes(&bytes);
    let stored = cache
        .store(&digest, BlobKind::Bundle, SHARED_LEN as u64, SystemTime::now(), || {
            Ok(Slow { data: &bytes })
        })
        .unwrap();
    fs::write(result, if stored.fetched { "fetched" } else { "found" }).unwrap();
}

fn spawn_helper(root: &Path, go: &Path, result: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "cache::tests::store_helper_process",
            "--test-threads=1",
            "--quiet",
        ])
        .env(HELPER_ROOT, root)
        .env(HELPER_GO, go)
        .env(HELPER_RESULT, result)
        .spawn()
        .unwrap()
}

fn wait_bounded(mut child: Child, deadline: Instant) -> std::process::ExitStatus {
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("a helper process did not finish in time");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn two_processes_store_the_same_blob_once() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("cache");
    let go = dir.path().join("go");
    let results = [dir.path().join("result-1"), dir.path().join("result-2")];
    let children: Vec<_> = results.iter().map(|r| spawn_helper(&root, &go, r)).collect();
    File::create(&go).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    for child in children {
        assert!(wait_bounded(child, deadline).success(), "neither process errors");
    }
    let mut outcomes: Vec<_> = results.iter().map(|r| fs::read_to_string(r).unwrap()).collect();
    outcomes.sort();
    assert_eq!(
        outcomes,
        ["fetched", "found"],
        "exactly one process fetched; the other waited and found it"
    );

    let bytes = data(SHARED_LEN, 9);
    let digest = digest_bytes(&bytes);
    assert_eq!(files_in(&root.join("v1/blobs/sha256")), vec![digest.hex().to_string()]);
    assert_eq!(files_in(&root.join("v1/tmp")), Vec::<String>::new());
    assert_eq!(
        fs::read(root.join("v1/blobs/sha256").join(digest.hex())).unwrap(),
        bytes
    );
    let cache = Cache::open(&root).unwrap();
    assert_eq!(
        cache.open_verified(&digest, SystemTime::now()).unwrap().map(|b| b.size),
        Some(SHARED_LEN as u64)
    );
}

#[test]
fn a_waiter_whose_lock_file_was_removed_takes_the_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let bytes = data(1000, 7);
    let digest = digest_bytes(&bytes);
    let held = cache.lock(&digest).unwrap();
    let waiter = {
        let (cache, digest, bytes) = (cache.clone(), digest.clone(), bytes.clone());
        std::thread::spawn(move || cache.store(&digest, BlobKind::Bundle, 1000, at(0), || Ok(&bytes[..])))
    };
    std::thread::sleep(Duration::from_millis(50));
    assert!(!waiter.is_finished(), "the store waits for the lock");
    // What `remove` does while holding the lock: unlink the lock file, then release it.
    fs::remove_file(cache.lock_path(&digest)).unwrap();
    drop(held);
    let stored = waiter.join().unwrap().unwrap();
    assert!(stored.fetched);
    assert!(cache.lock_path(&digest).exists(), "the waiter locked a new lock file");
    assert_eq!(fs::read(cache.blob_path(&digest)).unwrap(), bytes);
}

#[test]
fn run_dirs_are_removed_when_dropped_and_by_gc_only_when_abandoned() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let held = cache.run_dir().unwrap();
    let package = held.package_path();
    assert!(!package.exists(), "the package path is for the unpacker to create");
    fs::create_dir(&package).unwrap();
    fs::write(package.join("server.py"), "x").unwrap();
    // What a killed mcp-j leaves: a run directory no one holds.
    let abandoned = dir.path().join("v1/run/run-abandoned");
    fs::create_dir_all(abandoned.join("pkg/sub")).unwrap();

    cache.gc(GcOptions::default(), at(0)).unwrap();
    assert!(!abandoned.exists(), "gc removes an abandoned run directory");
    assert!(package.join("server.py").exists(), "gc leaves a held one alone");

    let second = cache.run_dir().unwrap();
    assert_ne!(second.package_path(), package, "each run gets its own");
    drop(held);
    assert!(!package.exists(), "dropping it removes it");
    drop(second);
    assert_eq!(files_in(&dir.path().join("v1/run")), Vec::<String>::new());
}
