//! Which version `latest` names: the highest by semver precedence (SemVer 2.0 §11) among
//! the `published` and `deprecated` versions. Versions that are not strict semver still
//! order sensibly: the core is split on `.` and compared part by part (numbers
//! numerically, a number before text, text by bytes; a missing part is lower), a
//! pre-release (`-rc.1`) sorts before its release, and build metadata (`+…`) is ignored
//! except as the last tie-breaker (so the order is total and `latest` deterministic).

use std::cmp::Ordering;

/// Compare two versions by the rule above.
pub fn compare(a: &str, b: &str) -> Ordering {
    let (a_main, a_build) = a.split_once('+').unwrap_or((a, ""));
    let (b_main, b_build) = b.split_once('+').unwrap_or((b, ""));
    let (a_core, a_pre) = split_pre(a_main);
    let (b_core, b_pre) = split_pre(b_main);
    compare_parts(a_core, b_core)
        .then_with(|| match (a_pre, b_pre) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Greater,
            (Some(_), None) => Ordering::Less,
            (Some(x), Some(y)) => compare_parts(x, y),
        })
        .then_with(|| a_build.cmp(b_build))
}

fn split_pre(version: &str) -> (&str, Option<&str>) {
    match version.split_once('-') {
        Some((core, pre)) => (core, Some(pre)),
        None => (version, None),
    }
}

fn compare_parts(a: &str, b: &str) -> Ordering {
    let mut a_parts = a.split('.');
    let mut b_parts = b.split('.');
    loop {
        match (a_parts.next(), b_parts.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let order = match (x.parse::<u64>(), y.parse::<u64>()) {
                    (Ok(m), Ok(n)) => m.cmp(&n),
                    (Ok(_), Err(_)) => Ordering::Less,
                    (Err(_), Ok(_)) => Ordering::Greater,
                    (Err(_), Err(_)) => x.cmp(y),
                };
                if order != Ordering::Equal {
                    return order;
                }
            }
        }
    }
}

/// Whether `version` may name a version: 1–128 of `[A-Za-z0-9._+-]`, starting with a
/// letter or digit, and not a word the resolve endpoint gives another meaning (`latest`,
/// a digest).
pub fn is_valid(version: &str) -> bool {
    !version.is_empty()
        && version.len() <= 128
        && version.starts_with(|c: char| c.is_ascii_alphanumeric())
        && version
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b'-'))
        && version != "latest"
        && !version.starts_with("sha256")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semver_precedence_holds() {
        let ordered = [
            "0.9.0",
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
            "1.2.0",
            "1.10.0",
            "2.0.0",
        ];
        for (i, a) in ordered.iter().enumerate() {
            for (j, b) in ordered.iter().enumerate() {
                assert_eq!(compare(a, b), i.cmp(&j), "{a} vs {b}");
            }
        }
    }

    #[test]
    fn non_semver_versions_still_order_totally() {
        assert_eq!(compare("1.2", "1.2.0"), Ordering::Less);
        assert_eq!(compare("2024.1", "2023.12"), Ordering::Greater);
        assert_eq!(compare("1.x", "1.2"), Ordering::Greater);
        assert_eq!(compare("1.0.0+b", "1.0.0+a"), Ordering::Greater);
        assert_eq!(compare("1.0.0+a", "1.0.0+a"), Ordering::Equal);
    }

    #[test]
    fn version_names_are_checked() {
        for ok in ["1.2.3", "1.0.0-rc.1+build.5", "v2", "2024_01"] {
            assert!(is_valid(ok), "{ok}");
        }
        let long = "1".repeat(129);
        for bad in [
            "",
            "latest",
            "sha256:abc",
            "-1",
            ".1",
            "1/2",
            "1 2",
            "1?x",
            long.as_str(),
        ] {
            assert!(!is_valid(bad), "{bad}");
        }
    }
}
