//! Explanations on stderr for failures whose cause is the sandbox, so that a server's own
//! error ("Bad git executable", "No such file or directory") has an explanation next to
//! it.

use std::path::{Path, PathBuf};

use mcp_j_engine::supervisor::DenialHook;
use mcp_j_engine::{Finished, Outcome, SandboxSpec, Workdir};

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
            say_whole_line(&format!(
                "mcp-j: --no-subprocess refused to start {program} ({}: {}){hint}",
                denial.what,
                errno_name(denial.errno)
            ));
        } else if seen == MAX_NAMED_DENIALS + 1 {
            say_whole_line("mcp-j: --no-subprocess refused more programs; the audit log (--audit-log) lists them");
        }
    })
}

/// One line on stderr in a single `write` (atomic on a pipe up to `PIPE_BUF`): the
/// program writes to the same stderr at the same time, and `eprintln!` may split a line.
fn say_whole_line(text: &str) {
    use std::io::Write;
    let line = format!("{text}\n");
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

fn errno_name(errno: i32) -> String {
    match errno {
        libc::EPERM => "EPERM".to_string(),
        libc::EACCES => "EACCES".to_string(),
        other => format!("errno {other}"),
    }
}

/// How many links and interpreters the diagnosis follows.
const MAX_HOPS: usize = 8;

/// What the jail shows of the host, for a diagnosis: where a host path is visible and
/// whether it is executable there.
struct View {
    executable: Vec<PathBuf>,
    writable: Vec<PathBuf>,
    /// The jail's `PATH`, for bare names.
    search: Vec<PathBuf>,
    workdir: Option<PathBuf>,
}

impl View {
    fn of(spec: &SandboxSpec) -> View {
        let host = mcp_j_engine::plan::HostLayout::probe(spec);
        let mut writable: Vec<PathBuf> = spec.rw_paths.iter().map(|p| p.path.clone()).collect();
        let workdir = match &spec.workdir {
            Workdir::Host(dir) => Some(dir.path.clone()),
            Workdir::Private | Workdir::Package => None,
        };
        writable.extend(workdir.iter().cloned());
        let search = spec
            .env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map_or("/usr/local/bin:/usr/bin:/bin", |(_, v)| v.as_str())
            .split(':')
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .collect();
        View {
            executable: mcp_j_engine::plan::executable_paths(spec, &host)
                .into_iter()
                .map(|p| std::fs::canonicalize(&p).unwrap_or(p))
                .collect(),
            writable,
            search,
            workdir,
        }
    }

    fn under<'a>(roots: &'a [PathBuf], path: &Path) -> Option<&'a PathBuf> {
        roots
            .iter()
            .filter(|r| path.starts_with(r))
            .max_by_key(|r| r.as_os_str().len())
    }

    /// The writable (so not executable) exposed tree `path` is in, if it is in one and
    /// not also under a more specific executable one.
    fn noexec_root(&self, path: &Path) -> Option<&PathBuf> {
        let writable = View::under(&self.writable, path)?;
        match View::under(&self.executable, path) {
            Some(exec) if exec.as_os_str().len() > writable.as_os_str().len() => None,
            _ => Some(writable),
        }
    }

    fn visible(&self, path: &Path) -> bool {
        View::under(&self.executable, path).is_some() || View::under(&self.writable, path).is_some()
    }

    /// A host path for the program as the jail would look it up.
    fn locate(&self, program: &str) -> Option<PathBuf> {
        if program.contains('/') {
            let path = Path::new(program);
            return Some(match (&self.workdir, path.is_relative()) {
                (Some(dir), true) => dir.join(path),
                _ => path.to_path_buf(),
            });
        }
        self.search
            .iter()
            .map(|d| d.join(program))
            .find(|p| p.symlink_metadata().is_ok())
    }
}

/// The directory to expose with `--ro` so that `target` is there: the install prefix
/// for a file in a `bin` directory (`~/.pyenv/versions/3.12.1` for its `bin/python`),
/// else the file's directory.
pub(crate) fn dir_to_expose(target: &Path) -> PathBuf {
    let parent = target.parent().unwrap_or(target);
    match (parent.file_name().and_then(|n| n.to_str()), parent.parent()) {
        (Some("bin" | "sbin"), Some(prefix)) if prefix != Path::new("/") => prefix.to_path_buf(),
        _ => parent.to_path_buf(),
    }
}

/// After the program could not start (or its loader gave up: exit 127), say on stderr
/// why, as far as the host shows: the program, the target of a symlink on the way, its
/// `#!` interpreter or its ELF loader is missing, not exposed, or in a place the sandbox
/// mounts not executable; and the `--ro` that fixes it. Says nothing when it finds no
/// cause.
pub fn explain_exec_failure(spec: &SandboxSpec, finished: &Finished) {
    let loader_gave_up = finished.outcome == Outcome::Exited(127);
    if !matches!(finished.outcome, Outcome::ExecFailed(_)) && !loader_gave_up {
        return;
    }
    let view = View::of(spec);
    let Some(path) = view.locate(&spec.program) else {
        if !loader_gave_up {
            eprintln!(
                "mcp-j: `{}` is not in the sandbox's PATH ({}); name it by its full path, and expose \
                 its directory with `--ro DIR` if it is not under /usr",
                spec.program,
                view.search
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(":")
            );
        }
        return;
    };
    if let Some(why) = explain_path(&view, &path, "the program", loader_gave_up, 0) {
        eprintln!("mcp-j: {why}");
    }
}

/// Why `path` (`role`: the program, its interpreter, …) cannot run in the jail, if the
/// host shows a reason. With `only_loader`, only a cause that lets the program start but
/// makes its loader fail (exit 127) is reported.
fn explain_path(view: &View, path: &Path, role: &str, only_loader: bool, depth: usize) -> Option<String> {
    if depth > MAX_HOPS {
        return None;
    }
    let shown = path.display();
    if path.symlink_metadata().is_err() {
        return (!only_loader).then(|| format!("{role} `{shown}` does not exist on the host either"));
    }
    let Ok(target) = std::fs::canonicalize(path) else {
        let link = std::fs::read_link(path)
            .map(|t| t.display().to_string())
            .unwrap_or_default();
        return (!only_loader).then(|| format!("{role} `{shown}` is a symlink to `{link}`, which does not exist"));
    };
    if !view.visible(&target) {
        if only_loader {
            return None;
        }
        let fix = dir_to_expose(&target);
        return Some(if target != path {
            format!(
                "{role} `{shown}` is a symlink to `{}`, which is not exposed in the sandbox; add `--ro {}`",
                target.display(),
                fix.display()
            )
        } else {
            format!(
                "{role} `{shown}` is not exposed in the sandbox; add `--ro {}`",
                fix.display()
            )
        });
    }
    if let Some(root) = view.noexec_root(&target)
        && depth > 0
    {
        return Some(format!(
            "{role} `{}` is in `{}`, which the sandbox mounts writable and so not executable; \
             expose its directory read-only and executable with `--ro {}`",
            target.display(),
            root.display(),
            dir_to_expose(&target).display()
        ));
    }
    // The program itself is exempt from noexec (bound again executable), not its
    // libraries beside it.
    if let Some(root) = View::under(&view.writable, &target)
        && only_loader
        && is_elf(&target)
    {
        return Some(format!(
            "exit 127 from {role} `{}`, which is in `{}`: the sandbox mounts that writable and so \
             not executable, and a shared library loaded from there fails to map (\"failed to map \
             segment from shared object\"); if that is the error, keep the program and its \
             libraries in a directory outside the workdir and `--rw` paths, exposed read-only and \
             executable with `--ro DIR`",
            target.display(),
            root.display(),
        ));
    }
    match interpreter(&target)? {
        Interpreter::Script(interp, first_arg) => {
            let is_env = interp.file_name().and_then(|n| n.to_str()) == Some("env");
            match (is_env, first_arg) {
                (true, Some(name)) if !name.starts_with('-') => {
                    let Some(found) = view.locate(&name) else {
                        return (!only_loader).then(|| {
                            format!(
                                "{role} `{shown}` starts with `#!{} {name}`, and `{name}` is not in the \
                                 sandbox's PATH; run the interpreter by its full path instead \
                                 (`-- /path/to/{name} {shown}`)",
                                interp.display()
                            )
                        });
                    };
                    explain_path(
                        view,
                        &found,
                        &format!("its interpreter (`#!… {name}`)"),
                        only_loader,
                        depth + 1,
                    )
                }
                _ => explain_path(view, &interp, "its interpreter (`#!` line)", only_loader, depth + 1),
            }
        }
        Interpreter::Elf(loader) => explain_path(view, &loader, "its ELF loader", only_loader, depth + 1),
    }
}

enum Interpreter {
    /// `#!INTERP [ARG]`.
    Script(PathBuf, Option<String>),
    /// `PT_INTERP` of a dynamically linked ELF.
    Elf(PathBuf),
}

fn is_elf(path: &Path) -> bool {
    read_head(path, 4).is_some_and(|h| h == b"\x7fELF")
}

fn read_head(path: &Path, len: usize) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).ok()?;
    let mut buf = vec![0u8; len];
    let mut filled = 0;
    while filled < len {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(_) => return None,
        }
    }
    buf.truncate(filled);
    Some(buf)
}

/// The interpreter a file asks for: its `#!` line, or its ELF `PT_INTERP` (64-bit
/// little-endian ELF only; `None` for anything else).
fn interpreter(path: &Path) -> Option<Interpreter> {
    let head = read_head(path, 256)?;
    if let Some(line) = head.strip_prefix(b"#!") {
        let line = &line[..line.iter().position(|&b| b == b'\n').unwrap_or(line.len())];
        let line = String::from_utf8_lossy(line);
        let mut words = line.split_whitespace();
        let interp = PathBuf::from(words.next()?);
        return Some(Interpreter::Script(interp, words.next().map(String::from)));
    }
    elf_interpreter(path).map(Interpreter::Elf)
}

fn elf_interpreter(path: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::FileExt;
    const PT_INTERP: u32 = 3;
    let file = std::fs::File::open(path).ok()?;
    let mut header = [0u8; 64];
    file.read_exact_at(&mut header, 0).ok()?;
    // 64-bit (EI_CLASS 2), little-endian (EI_DATA 1).
    if &header[..4] != b"\x7fELF" || header[4] != 2 || header[5] != 1 {
        return None;
    }
    let u16_at = |b: &[u8], i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
    let u32_at = |b: &[u8], i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let u64_at = |b: &[u8], i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[i..i + 8]);
        u64::from_le_bytes(w)
    };
    let phoff = u64_at(&header, 0x20);
    let phentsize = u64::from(u16_at(&header, 0x36));
    let phnum = u64::from(u16_at(&header, 0x38)).min(64);
    if phentsize < 56 {
        return None;
    }
    for i in 0..phnum {
        let mut ph = [0u8; 56];
        file.read_exact_at(&mut ph, phoff.checked_add(i * phentsize)?).ok()?;
        if u32_at(&ph, 0) == PT_INTERP {
            let len = usize::try_from(u64_at(&ph, 0x20)).ok()?.min(4096);
            let mut name = vec![0u8; len];
            file.read_exact_at(&mut name, u64_at(&ph, 0x08)).ok()?;
            let end = name.iter().position(|&b| b == 0).unwrap_or(len);
            return Some(PathBuf::from(String::from_utf8_lossy(&name[..end]).into_owned()));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dir_to_expose_is_the_install_prefix_of_a_bin_dir() {
        assert_eq!(
            dir_to_expose(Path::new("/home/u/.pyenv/versions/3.12.1/bin/python3.12")),
            Path::new("/home/u/.pyenv/versions/3.12.1")
        );
        assert_eq!(
            dir_to_expose(Path::new("/opt/tool/lib/x.so")),
            Path::new("/opt/tool/lib")
        );
        assert_eq!(dir_to_expose(Path::new("/bin/sh")), Path::new("/bin"));
    }

    #[test]
    fn the_elf_loader_of_a_real_binary_is_found() {
        let loader = elf_interpreter(Path::new("/bin/sh")).or_else(|| elf_interpreter(Path::new("/usr/bin/env")));
        let loader = loader.expect("a dynamically linked /bin/sh or /usr/bin/env");
        assert!(loader.to_string_lossy().contains("ld-"), "{}", loader.display());
    }
}
