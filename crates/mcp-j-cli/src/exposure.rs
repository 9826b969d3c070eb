//! The user's exposed trees before and after a jail (see `mcp_j_engine::exposure`): before,
//! the covers go into the spec and the user is told once what changed; after, what the jail
//! planted is moved aside and the user is told where.

use std::path::Path;

use anyhow::{Result, anyhow};
use mcp_j_engine::SandboxSpec;
use mcp_j_engine::exposure::{self, Cover, Survey};

/// How many paths a note names before it says "and N more".
const NAMED_IN_A_NOTE: usize = 3;

/// Walk the exposed trees of `spec` and add what init must cover to it. Refuses when the
/// walk hits its cap (the caller exits 125).
pub fn survey(spec: &mut SandboxSpec) -> Result<Survey> {
    let survey = exposure::survey(spec).map_err(|cap| {
        anyhow!(
            "{cap}. mcp-j must look through every exposed directory for project config and \
             sockets before the jail starts; expose a smaller directory (`--workdir DIR`, \
             `--ro DIR`, `--rw DIR`)"
        )
    })?;
    spec.covers = survey.covers().to_vec();
    let read_only: Vec<&Path> = survey
        .covers()
        .iter()
        .filter(|c| matches!(c, Cover::ReadOnly(_)))
        .map(Cover::path)
        .collect();
    let endpoints: Vec<&Path> = survey
        .covers()
        .iter()
        .filter(|c| matches!(c, Cover::Endpoint(_)))
        .map(Cover::path)
        .collect();
    if !read_only.is_empty() {
        eprintln!(
            "mcp-j: {} inside the writable directories {} read-only in the sandbox, as host programs \
             run code from them ({}): {}; pass `--rw PATH` with one of them to make it writable",
            count(read_only.len(), "path"),
            if read_only.len() == 1 { "stays" } else { "stay" },
            exposure::PROJECT_CONFIG_NAMES.join(", "),
            first_few(&read_only),
        );
    }
    if !endpoints.is_empty() {
        eprintln!(
            "mcp-j: {} inside the exposed directories {} covered in the sandbox, as a read-only \
             mount does not stop `connect` or a FIFO write: {}; pass `--ro PATH` with the socket \
             itself to expose it",
            count(endpoints.len(), "unix socket or FIFO"),
            if endpoints.len() == 1 { "is" } else { "are" },
            first_few(&endpoints),
        );
    }
    Ok(survey)
}

/// After the jail has ended: move aside what it planted, and say so.
pub fn quarantine(survey: &Survey) {
    let done = survey.quarantine();
    for (from, to) in &done.moved {
        eprintln!(
            "mcp-j: the sandboxed program created `{}`, which host programs may run code from; \
             moved it to `{}` (look at it before you restore or delete it)",
            from.display(),
            to.display()
        );
    }
    for (path, err) in &done.failed {
        eprintln!(
            "mcp-j: warning: the sandboxed program created `{}`, which host programs may run code \
             from, and it could not be moved aside ({err}); look at it before you run git or \
             open the directory in an editor",
            path.display()
        );
    }
    if let Some(cap) = &done.incomplete {
        eprintln!(
            "mcp-j: warning: the check for project config the sandboxed program may have created \
             stopped early: {cap}; look for new .git, .envrc, .vscode, .idea or .devcontainer \
             entries before you run git or open the directory in an editor"
        );
    }
}

fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else if what.ends_with("FIFO") {
        format!("{n} unix sockets or FIFOs")
    } else {
        format!("{n} {what}s")
    }
}

/// The first few paths, then how many more.
fn first_few(paths: &[&Path]) -> String {
    let mut out: Vec<String> = paths
        .iter()
        .take(NAMED_IN_A_NOTE)
        .map(|p| format!("`{}`", p.display()))
        .collect();
    if paths.len() > NAMED_IN_A_NOTE {
        out.push(format!("and {} more", paths.len() - NAMED_IN_A_NOTE));
    }
    out.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn notes_name_the_first_few_then_count() {
        let paths: Vec<PathBuf> = (0..5).map(|i| PathBuf::from(format!("/w/{i}/.git"))).collect();
        let refs: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
        assert_eq!(first_few(&refs), "`/w/0/.git`, `/w/1/.git`, `/w/2/.git`, and 2 more");
        assert_eq!(first_few(&refs[..1]), "`/w/0/.git`");
        assert_eq!(count(2, "unix socket or FIFO"), "2 unix sockets or FIFOs");
        assert_eq!(count(1, "path"), "1 path");
    }
}
