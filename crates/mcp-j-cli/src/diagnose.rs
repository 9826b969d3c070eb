//! Explanations on stderr for failures whose cause is the sandbox, so that a server's own
//! error ("Bad git executable", "No such file or directory") has an explanation next to
//! it.

use mcp_j_engine::supervisor::DenialHook;

/// How many refused programs are named one by one on stderr.
const MAX_NAMED_DENIALS: usize = 8;

/// One stderr line per program `--no-subprocess` refused, as it happens, for the first
/// [`MAX_NAMED_DENIALS`]; then one line saying there were more (the audit log has them).
pub fn denial_printer() -> DenialHook {
    let mut seen = 0usize;
    Box::new(move |denial| {
        seen += 1;
        if seen <= MAX_NAMED_DENIALS {
            let program = match &denial.program {
                Some(path) => format!("`{path}`"),
                None => "a program".to_string(),
            };
            let hint = if seen == 1 {
                " (to let the program start others, leave out --no-subprocess: flag, manifest \
                 `no_subprocess` or config `policy.no_subprocess`)"
            } else {
                ""
            };
            eprintln!(
                "mcp-j: --no-subprocess refused to start {program} ({}: {}){hint}",
                denial.what,
                errno_name(denial.errno)
            );
        } else if seen == MAX_NAMED_DENIALS + 1 {
            eprintln!("mcp-j: --no-subprocess refused more programs; the audit log (--audit-log) lists them");
        }
    })
}

fn errno_name(errno: i32) -> String {
    match errno {
        libc::EPERM => "EPERM".to_string(),
        libc::EACCES => "EACCES".to_string(),
        other => format!("errno {other}"),
    }
}
