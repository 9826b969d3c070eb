//! The registry's resolve answer (REGISTRY_API.md, *Read*): the root of trust of a package
//! run. Parsed strictly: digests in their one spelling, a known status, a certification
//! level 0–3, an origin (`community` when missing); unknown fields are ignored, as other
//! registries may add their own.

use serde::{Deserialize, Serialize};

use crate::certification::{CertLevel, Origin, PackageStatus};
use crate::package::Digest;

/// The largest resolve answer read (a few evidence entries fit many times over).
pub const MAX_RESOLVE_BYTES: usize = 256 * 1024;

/// `GET /v1/org/{org}/mcps/{name}/resolve?ref={ref}`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolveAnswer {
    /// `org/name`.
    pub package: String,
    /// The reference as asked (`1.2.3`, `latest`, a digest).
    #[serde(rename = "ref")]
    pub reference: String,
    /// Who published it; `community` when the registry does not say.
    #[serde(default)]
    pub origin: Origin,
    /// What the reference resolved to.
    pub resolved: Resolved,
}

/// The `resolved` object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolved {
    /// The exact version.
    pub version: String,
    /// The source commit, when the registry knows it.
    #[serde(default)]
    pub git_sha: Option<String>,
    /// Its lifecycle status (only `published` and `deprecated` run).
    pub status: PackageStatus,
    /// The certification level that counts (not the manifest's own block).
    pub certification_level: CertLevel,
    /// The manifest, by digest.
    pub manifest: ArtifactRef,
    /// The bundle, by digest, with its size.
    pub bundle: BundleArtifact,
    /// Evidence (scan reports, attestations), informational.
    #[serde(default)]
    pub evidence: Vec<Evidence>,
}

/// An artifact named by digest; its `url` is informational (the client fetches by digest
/// from the same registry's artifact endpoints).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactRef {
    /// The artifact's digest.
    pub digest: Digest,
    /// Where the registry says it is (not used to fetch).
    #[serde(default)]
    pub url: Option<String>,
}

/// The bundle: its digest and its size, the cap for the download.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleArtifact {
    /// The bundle's digest.
    pub digest: Digest,
    /// Informational, as for [`ArtifactRef::url`].
    #[serde(default)]
    pub url: Option<String>,
    /// Its size in bytes.
    pub size_bytes: u64,
}

/// One piece of evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// What it is (`scan`, `sbom`, …).
    pub kind: String,
    /// Its digest.
    pub digest: Digest,
    /// Where it is.
    #[serde(default)]
    pub url: Option<String>,
}

impl ResolveAnswer {
    /// Parse an answer for `package` (`org/name`): a malformed answer, or one for another
    /// package, is an error naming what is wrong.
    pub fn from_json(text: &str, package: &str) -> Result<ResolveAnswer, String> {
        if text.len() > MAX_RESOLVE_BYTES {
            return Err(format!(
                "the resolve answer is {} bytes, over the {MAX_RESOLVE_BYTES} a client reads",
                text.len()
            ));
        }
        let answer: ResolveAnswer =
            serde_json::from_str(text).map_err(|e| format!("the registry's resolve answer is not valid: {e}"))?;
        if answer.package != package {
            return Err(format!(
                "the registry answered for `{}` when asked for `{package}`",
                answer.package
            ));
        }
        if answer.resolved.version.is_empty() {
            return Err("the registry's resolve answer has an empty version".to_owned());
        }
        Ok(answer)
    }
}

/// Why a fetched manifest does not belong to the resolve answer (INTERFACE, *Packages*:
/// each is a refusal, exit 126, and nothing runs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    /// The manifest names another bundle than the one resolved.
    BundleDigest {
        /// The resolve answer's.
        resolved: Digest,
        /// The manifest's (`None`: it names none).
        manifest: Option<Digest>,
    },
    /// The manifest is another package's.
    PackageId {
        /// The package asked for.
        asked: String,
        /// The manifest's `package.id`.
        manifest: String,
    },
    /// The manifest is another version's.
    Version {
        /// The resolved version.
        resolved: String,
        /// The manifest's `package.version`.
        manifest: String,
    },
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mismatch::BundleDigest { resolved, manifest } => write!(
                f,
                "the manifest names bundle {} but the registry resolved bundle {resolved}",
                manifest.as_ref().map_or("(none)", Digest::as_str)
            ),
            Mismatch::PackageId { asked, manifest } => {
                write!(f, "the manifest is for package `{manifest}`, not `{asked}` as asked")
            }
            Mismatch::Version { resolved, manifest } => write!(
                f,
                "the manifest is for version {manifest}, but the registry resolved {resolved}"
            ),
        }
    }
}

/// The checks that tie a manifest (already verified against `answer`'s manifest digest) to
/// the answer and to the package asked for (`org/name`): its `bundle.digest` is the
/// resolved bundle's, its `package.id` is the name asked, its `package.version` the
/// resolved version. Every mismatch is returned, in that order.
#[must_use]
pub fn manifest_mismatches(
    answer: &ResolveAnswer,
    manifest: &crate::package::PackageManifest,
    asked: &str,
) -> Vec<Mismatch> {
    let mut found = Vec::new();
    let bundle = manifest.bundle.as_ref().map(|b| b.digest.clone());
    if bundle.as_ref() != Some(&answer.resolved.bundle.digest) {
        found.push(Mismatch::BundleDigest {
            resolved: answer.resolved.bundle.digest.clone(),
            manifest: bundle,
        });
    }
    if manifest.package.id != asked {
        found.push(Mismatch::PackageId {
            asked: asked.to_owned(),
            manifest: manifest.package.id.clone(),
        });
    }
    if manifest.package.version != answer.resolved.version {
        found.push(Mismatch::Version {
            resolved: answer.resolved.version.clone(),
            manifest: manifest.package.version.clone(),
        });
    }
    found
}

/// Orders two version strings as versions: semantic versions by precedence (`1.10.0` after
/// `1.9.0`, a pre-release before its release), ahead of anything that is not one (those
/// compare as text). For an offline `latest`: the newest version the cache has an answer for.
pub fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    match (semver::Version::parse(a), semver::Version::parse(b)) {
        (Ok(a), Ok(b)) => a.cmp(&b),
        (Ok(_), Err(_)) => std::cmp::Ordering::Greater,
        (Err(_), Ok(_)) => std::cmp::Ordering::Less,
        (Err(_), Err(_)) => a.cmp(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn answer(origin: &str, status: &str, level: &str, manifest: &str) -> String {
        format!(
            r#"{{"package":"acme/hello","ref":"latest",{origin}"resolved":{{"version":"1.2.3","status":"{status}",
            "certification_level":{level},"manifest":{{"digest":"{manifest}","url":"https://x/m"}},
            "bundle":{{"digest":"{D2}","size_bytes":1234}},"evidence":[],"extra":"ignored"}},"also":1}}"#
        )
    }

    #[test]
    fn a_well_formed_answer_reads_whole() {
        let a =
            ResolveAnswer::from_json(&answer(r#""origin":"verified","#, "published", "2", D1), "acme/hello").unwrap();
        assert_eq!(a.reference, "latest");
        assert_eq!(a.origin, Origin::Verified);
        assert_eq!(a.resolved.version, "1.2.3");
        assert_eq!(a.resolved.status, PackageStatus::Published);
        assert_eq!(a.resolved.certification_level, "2".parse().unwrap());
        assert_eq!(a.resolved.manifest.digest.as_str(), D1);
        assert_eq!(a.resolved.bundle.size_bytes, 1234);
    }

    #[test]
    fn a_missing_origin_is_community() {
        let a = ResolveAnswer::from_json(&answer("", "deprecated", "0", D1), "acme/hello").unwrap();
        assert_eq!(a.origin, Origin::Community);
    }

    #[test]
    fn malformed_answers_are_refused_naming_the_problem() {
        let cases = [
            (answer("", "published", "4", D1), "certification"),
            (answer("", "shiny", "0", D1), "shiny"),
            (answer("", "published", "0", "sha256:ABC"), "digest"),
            (answer(r#""origin":"galactic","#, "published", "0", D1), "galactic"),
            ("{}".to_owned(), "not valid"),
            ("[1,2]".to_owned(), "not valid"),
        ];
        for (text, needle) in cases {
            let err = ResolveAnswer::from_json(&text, "acme/hello").unwrap_err();
            assert!(err.contains(needle), "{needle}: {err}");
        }
        let err = ResolveAnswer::from_json(&answer("", "published", "0", D1), "acme/other").unwrap_err();
        assert!(err.contains("when asked for `acme/other`"), "{err}");
        let huge = format!("{}{}", answer("", "published", "0", D1), " ".repeat(MAX_RESOLVE_BYTES));
        assert!(
            ResolveAnswer::from_json(&huge, "acme/hello")
                .unwrap_err()
                .contains("over the")
        );
    }

    fn manifest(id: &str, version: &str, bundle: Option<&str>) -> crate::package::PackageManifest {
        let bundle = bundle.map_or(String::new(), |d| {
            format!(r#""bundle":{{"digest":"{d}","size_bytes":5}},"#)
        });
        let text = format!(
            r#"{{"schema_version":"1.0","package":{{"id":"{id}","version":"{version}"}},{bundle}
            "transport":{{"type":"stdio"}},
            "entrypoints":[{{"os":"linux","arch":"amd64","command":"/usr/bin/python3","args":["s.py"]}}]}}"#
        );
        crate::package::PackageManifest::from_json(&text).unwrap()
    }

    #[test]
    fn a_manifest_must_be_the_resolved_bundle_package_and_version() {
        let answer = ResolveAnswer::from_json(&answer("", "published", "0", D1), "acme/hello").unwrap();
        let good = manifest("acme/hello", "1.2.3", Some(D2));
        assert_eq!(manifest_mismatches(&answer, &good, "acme/hello"), []);
        let bad = manifest("acme/other", "9.9.9", Some(D1));
        let found = manifest_mismatches(&answer, &bad, "acme/hello");
        assert_eq!(found.len(), 3, "{found:?}");
        let text: Vec<String> = found.iter().map(ToString::to_string).collect();
        assert!(text[0].contains(D1) && text[0].contains(D2), "{}", text[0]);
        assert!(text[1].contains("`acme/other`, not `acme/hello`"), "{}", text[1]);
        assert!(text[2].contains("9.9.9") && text[2].contains("1.2.3"), "{}", text[2]);
        let none = manifest("acme/hello", "1.2.3", None);
        assert!(
            manifest_mismatches(&answer, &none, "acme/hello")[0]
                .to_string()
                .contains("(none)")
        );
    }

    #[test]
    fn versions_order_by_precedence_not_text() {
        for (newer, older) in [
            ("1.10.0", "1.9.0"),
            ("2.0.0", "1.99.99"),
            ("1.0.0", "1.0.0-rc.1"),
            ("0.1.0", "not-semver"),
            ("b", "a"),
        ] {
            assert_eq!(
                compare_versions(newer, older),
                std::cmp::Ordering::Greater,
                "{newer} > {older}"
            );
            assert_eq!(
                compare_versions(older, newer),
                std::cmp::Ordering::Less,
                "{older} < {newer}"
            );
        }
    }
}
