//! What `mcp-j run REF`, `pull REF` and `info REF` take (INTERFACE.md *Packages* and *npm
//! and PyPI servers*), parsed into a [`PackageRef`] without touching a registry.
//!
//! # The grammar
//!
//! - A registry package: `org/name@VERSION`, `org/name@latest`, `org/name` (the same as
//!   `@latest`: the registry resolves it on each run, and offline the newest cached version
//!   is used), or `org/name@sha256:<64 hex>`, which names the *manifest's* digest (issue 10;
//!   REGISTRY_API.md's resolve takes "a version, `latest`, or a digest"). `org` and `name`
//!   are `[A-Za-z0-9_-]+` (REGISTRY_API.md), each at most [`MAX_NAME_PART`] bytes: the API
//!   sets no length, so the cap only keeps absurd input out of URLs and file names.
//! - A version is an exact string, not a range: REGISTRY_API.md matches it as written and does
//!   not require semver. It is 1 to [`MAX_VERSION`] bytes of `[A-Za-z0-9._+-]`, starting with
//!   a letter or digit (semver with pre-release and build metadata fits, as do `v2` or
//!   `2024.06.01`). `latest` is the keyword, never a version.
//! - `npm:NAME[@VERSION]` with NAME `name` or `@scope/name` (npm's rules for existing
//!   packages: at most 214 bytes, URL-safe characters `[A-Za-z0-9._~-]`, not starting with `.`
//!   or `_`) and VERSION an exact version or a dist-tag (`latest`, `next`) in the version
//!   alphabet — no ranges (`^1.2`, `>=1`), which would not pin anything.
//! - `pypi:NAME[==VERSION]` with NAME as PEP 508 spells it (letters, digits, `.`, `_`, `-`,
//!   starting and ending with a letter or digit) and VERSION in PEP 440's alphabet; only `==`
//!   pins, so other operators are refused.
//! - `npm:PATH.tgz` and `pypi:PATH.whl` (or `.tar.gz`) for local archives, where PATH starts
//!   with `./`, `../` or `/` so a name is never mistaken for a file.
//!
//! With no version, an npm or PyPI package's latest version is resolved once and pinned by
//! the caller (INTERFACE.md); this module only records that none was given.

use std::fmt;
use std::str::FromStr;

use crate::package::Digest;

/// The longest `org` or `name` part of a registry package this parser accepts.
pub const MAX_NAME_PART: usize = 128;
/// The longest version string this parser accepts.
pub const MAX_VERSION: usize = 128;
/// The longest npm name (npm's own limit).
pub const MAX_NPM_NAME: usize = 214;
/// The longest PyPI name this parser accepts (PyPI sets none; this keeps input sane).
pub const MAX_PYPI_NAME: usize = 128;

/// A reference to a package, as the commands take it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PackageRef {
    /// A package of an mcp-j registry (`org/name@…`).
    Registry(RegistryRef),
    /// An npm package or a local npm archive (`npm:…`).
    Npm(NpmRef),
    /// A PyPI package or a local wheel or sdist (`pypi:…`).
    Pypi(PypiRef),
}

/// A registry package and which of its versions.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RegistryRef {
    /// The organisation (`acme`).
    pub org: String,
    /// The package name inside it (`hello`).
    pub name: String,
    /// Which version.
    pub selector: Selector,
}

/// Which version of a registry package: what the resolve endpoint's `ref` receives.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Selector {
    /// An exact version string (`1.2.3`).
    Version(String),
    /// The newest version (`@latest`, or no `@` at all).
    Latest,
    /// The version whose manifest has this digest (`@sha256:…`).
    ManifestDigest(Digest),
}

/// An npm package from the npm registry, or a local archive.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum NpmRef {
    /// `npm:NAME[@VERSION]`.
    Package {
        /// `name` or `@scope/name`.
        name: String,
        /// An exact version or a dist-tag; `None` when not given.
        version: Option<String>,
    },
    /// `npm:./file.tgz`: the path as written.
    Archive(String),
}

/// A PyPI package from the package index, or a local archive.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PypiRef {
    /// `pypi:NAME[==VERSION]`.
    Package {
        /// The name as written.
        name: String,
        /// The exact version; `None` when not given.
        version: Option<String>,
    },
    /// `pypi:./file.whl`: the path as written.
    Archive(String),
}

impl RegistryRef {
    /// `org/name`, as `package.id` and the API's paths spell it.
    pub fn package_id(&self) -> String {
        format!("{}/{}", self.org, self.name)
    }
}

impl Selector {
    /// The value of the resolve endpoint's `ref` parameter (before URL encoding: a version
    /// may hold `+`).
    pub fn as_ref_param(&self) -> &str {
        match self {
            Selector::Version(version) => version,
            Selector::Latest => "latest",
            Selector::ManifestDigest(digest) => digest.as_str(),
        }
    }
}

impl FromStr for PackageRef {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        parse(text)
    }
}

/// Parses what `run`, `pull` and `info` take. The error names what is wrong and shows a
/// reference written correctly.
pub fn parse(text: &str) -> Result<PackageRef, String> {
    if text.is_empty() {
        return Err("the package reference is empty: write `org/name@version`, e.g. `acme/hello@1.2.3`".into());
    }
    if let Some(rest) = text.strip_prefix("npm:") {
        return parse_npm(rest).map(PackageRef::Npm);
    }
    if let Some(rest) = text.strip_prefix("pypi:") {
        return parse_pypi(rest).map(PackageRef::Pypi);
    }
    if let Some((kind, _)) = text.split_once(':')
        && !kind.contains(['/', '@'])
    {
        return Err(format!(
            "`{text}`: `{kind}:` is not a kind of package mcp-j knows: write `org/name@version` \
             (e.g. `acme/hello@1.2.3`), `npm:NAME@VERSION` or `pypi:NAME==VERSION`"
        ));
    }
    parse_registry(text).map(PackageRef::Registry)
}

fn parse_registry(text: &str) -> Result<RegistryRef, String> {
    let example = "e.g. `acme/hello@1.2.3`, `acme/hello@latest` or `acme/hello@sha256:<64 hex digits>`";
    let (id, selector) = match text.split_once('@') {
        Some((id, selector)) => (id, Some(selector)),
        None => (text, None),
    };
    let Some((org, name)) = id.split_once('/') else {
        return Err(format!(
            "`{text}` is not a package reference: write `org/name@version`, {example}"
        ));
    };
    check_name_part(text, "organisation", org, example)?;
    check_name_part(text, "package name", name, example)?;
    let selector = match selector {
        None | Some("latest") => Selector::Latest,
        Some("") => return Err(format!("`{text}` has an empty version after `@`: {example}")),
        Some(digest) if digest.starts_with("sha256:") => Selector::ManifestDigest(digest.parse().map_err(|_| {
            format!(
                "`{text}`: `{digest}` is not a manifest digest: write `sha256:` and 64 lowercase hex digits, {example}"
            )
        })?),
        Some(version) => {
            check_version(text, version, example)?;
            Selector::Version(version.to_string())
        }
    };
    Ok(RegistryRef {
        org: org.to_string(),
        name: name.to_string(),
        selector,
    })
}

fn check_name_part(text: &str, what: &str, part: &str, example: &str) -> Result<(), String> {
    if part.is_empty() {
        return Err(format!(
            "`{text}` has an empty {what}: write `org/name@version`, {example}"
        ));
    }
    if part.len() > MAX_NAME_PART {
        return Err(format!(
            "`{text}`: the {what} is {} bytes long, more than {MAX_NAME_PART}: {example}",
            part.len()
        ));
    }
    if let Some(bad) = part
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        return Err(format!(
            "`{text}`: the {what} `{part}` holds `{bad}`; only letters, digits, `_` and `-` are allowed: {example}"
        ));
    }
    Ok(())
}

fn is_version_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '-')
}

fn check_version(text: &str, version: &str, example: &str) -> Result<(), String> {
    if version.len() > MAX_VERSION {
        return Err(format!(
            "`{text}`: the version is {} bytes long, more than {MAX_VERSION}: {example}",
            version.len()
        ));
    }
    if let Some(bad) = version.chars().find(|c| !is_version_char(*c)) {
        return Err(format!(
            "`{text}`: the version `{version}` holds `{bad}`; a version is an exact string of letters, digits, \
             `.`, `_`, `+` and `-` (no ranges): {example}"
        ));
    }
    if !version.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(format!(
            "`{text}`: the version `{version}` must start with a letter or digit: {example}"
        ));
    }
    Ok(())
}

fn is_local_path(text: &str) -> bool {
    text.starts_with("./") || text.starts_with("../") || text.starts_with('/')
}

fn check_archive_path(text: &str, path: &str, suffixes: &[&str], example: &str) -> Result<String, String> {
    if path.contains('\0') {
        return Err(format!("`{text}`: the archive path holds a NUL byte: {example}"));
    }
    if !suffixes.iter().any(|s| path.len() > s.len() && path.ends_with(s)) {
        let list = suffixes
            .iter()
            .map(|s| format!("`{s}`"))
            .collect::<Vec<_>>()
            .join(" or ");
        return Err(format!("`{text}`: a local archive ends with {list}: {example}"));
    }
    Ok(path.to_string())
}

fn parse_npm(rest: &str) -> Result<NpmRef, String> {
    let text = format!("npm:{rest}");
    let example = "e.g. `npm:@scope/name@1.2.3`, `npm:name@1.2.3`, `npm:name` or `npm:./file.tgz`";
    if is_local_path(rest) {
        return check_archive_path(&text, rest, &[".tgz", ".tar.gz"], example).map(NpmRef::Archive);
    }
    // A scoped name starts with `@`: the version's `@` is the next one after the slash.
    let (name, version) = match rest.strip_prefix('@') {
        Some(scoped) => match scoped.split_once('@') {
            Some((name, version)) => (&rest[..name.len() + 1], Some(version)),
            None => (rest, None),
        },
        None => match rest.split_once('@') {
            Some((name, version)) => (name, Some(version)),
            None => (rest, None),
        },
    };
    check_npm_name(&text, name, example)?;
    let version = match version {
        None => None,
        Some("") => return Err(format!("`{text}` has an empty version after `@`: {example}")),
        Some(version) => {
            if version
                .chars()
                .any(|c| matches!(c, '^' | '~' | '>' | '<' | '=' | '*' | ' ' | '|'))
            {
                return Err(format!(
                    "`{text}`: `{version}` is a range; give an exact version or a dist-tag so the \
                     install is pinned: {example}"
                ));
            }
            check_version(&text, version, example)?;
            Some(version.to_string())
        }
    };
    Ok(NpmRef::Package {
        name: name.to_string(),
        version,
    })
}

fn check_npm_name(text: &str, name: &str, example: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("`{text}` names no package: {example}"));
    }
    if name.len() > MAX_NPM_NAME {
        return Err(format!(
            "`{text}`: the npm name is {} bytes long, more than npm's {MAX_NPM_NAME}: {example}",
            name.len()
        ));
    }
    let part_ok = |part: &str| {
        !part.is_empty()
            && !part.starts_with(['.', '_'])
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '~' | '-'))
    };
    let ok = match name.strip_prefix('@') {
        Some(scoped) => scoped
            .split_once('/')
            .is_some_and(|(scope, bare)| part_ok(scope) && part_ok(bare)),
        None => part_ok(name),
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{text}`: `{name}` is not an npm name (`name` or `@scope/name` of letters, digits, `.`, `_`, \
             `~` and `-`, not starting with `.` or `_`): {example}"
        ))
    }
}

fn parse_pypi(rest: &str) -> Result<PypiRef, String> {
    let text = format!("pypi:{rest}");
    let example = "e.g. `pypi:mcp-server-fetch==1.2.3`, `pypi:mcp-server-fetch` or `pypi:./file.whl`";
    if is_local_path(rest) {
        return check_archive_path(&text, rest, &[".whl", ".tar.gz"], example).map(PypiRef::Archive);
    }
    let (name, version) = match rest.split_once("==") {
        Some((name, version)) => (name, Some(version)),
        None => (rest, None),
    };
    if let Some(at) = name.find(['<', '>', '~', '!', '=', '@', '[', ';', ' ']) {
        let op = &name[at..];
        return Err(format!(
            "`{text}`: `{op}` is not an exact pin; write `NAME==VERSION`: {example}"
        ));
    }
    if name.is_empty() {
        return Err(format!("`{text}` names no package: {example}"));
    }
    if name.len() > MAX_PYPI_NAME {
        return Err(format!(
            "`{text}`: the name is {} bytes long, more than {MAX_PYPI_NAME}: {example}",
            name.len()
        ));
    }
    let inner_ok = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    let ends_ok =
        name.starts_with(|c: char| c.is_ascii_alphanumeric()) && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !(inner_ok && ends_ok) {
        return Err(format!(
            "`{text}`: `{name}` is not a PyPI name (letters, digits, `.`, `_` and `-`, starting and ending \
             with a letter or digit): {example}"
        ));
    }
    let version = match version {
        None => None,
        Some("") => return Err(format!("`{text}` has an empty version after `==`: {example}")),
        Some(version) => {
            let ok = version.len() <= MAX_VERSION
                && version.starts_with(|c: char| c.is_ascii_alphanumeric())
                && version
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '-' | '!'));
            if !ok {
                return Err(format!(
                    "`{text}`: `{version}` is not an exact version (letters, digits, `.`, `_`, `+`, `-` \
                     and `!`, at most {MAX_VERSION} bytes): {example}"
                ));
            }
            Some(version.to_string())
        }
    };
    Ok(PypiRef::Package {
        name: name.to_string(),
        version,
    })
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_ref_param())
    }
}

impl fmt::Display for RegistryRef {
    /// `org/name@selector`; a reference without `@` is shown with `@latest`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}@{}", self.org, self.name, self.selector)
    }
}

impl fmt::Display for PackageRef {
    /// The reference in a form [`parse`] reads back to the same value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PackageRef::Registry(r) => r.fmt(f),
            PackageRef::Npm(NpmRef::Package { name, version: None }) => write!(f, "npm:{name}"),
            PackageRef::Npm(NpmRef::Package { name, version: Some(v) }) => write!(f, "npm:{name}@{v}"),
            PackageRef::Npm(NpmRef::Archive(path)) => write!(f, "npm:{path}"),
            PackageRef::Pypi(PypiRef::Package { name, version: None }) => write!(f, "pypi:{name}"),
            PackageRef::Pypi(PypiRef::Package { name, version: Some(v) }) => write!(f, "pypi:{name}=={v}"),
            PackageRef::Pypi(PypiRef::Archive(path)) => write!(f, "pypi:{path}"),
        }
    }
}

#[cfg(test)]
mod tests;
