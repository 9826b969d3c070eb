//! Attacks on the file system: reading and writing outside the jail, planting setuid files
//! and device nodes, leaked file descriptors, and executing files from writable places.

use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::time::Duration;

use crate::Report;
use crate::sys::{self, ChildEnd, Errno};

/// What `write` and friends put in a file: easy to spot on the host.
pub const MARKER: &[u8] = b"written by mcp-j-attack\n";

/// How long a child that execs a program may run.
const EXEC_BOUND: Duration = Duration::from_secs(20);

fn errno_of(e: &std::io::Error) -> Errno {
    Errno::of(e)
}

/// Opens PATH read-only and reads from it.
pub fn read(path: &str) -> Report {
    let mut file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
    {
        Ok(f) => f,
        Err(e) => return Report::Denied(format!("{} (open {path})", errno_of(&e))),
    };
    let mut buf = [0u8; 64];
    match file.read(&mut buf) {
        Ok(n) => Report::Escaped(format!("opened {path} and read {n} bytes")),
        Err(e) => Report::Escaped(format!("opened {path} (read: {})", errno_of(&e))),
    }
}

/// Opens PATH read-only without reading (devices, whose reads may block or change state).
pub fn open(path: &str) -> Report {
    match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
    {
        Ok(_) => Report::Escaped(format!("opened {path}")),
        Err(e) => Report::Denied(format!("{} (open {path})", errno_of(&e))),
    }
}

/// Creates or appends to PATH and writes [`MARKER`]. Appends rather than truncates, so an
/// escape does not destroy what was there.
pub fn write(path: &str) -> Report {
    let mut file = match OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o644)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
    {
        Ok(f) => f,
        Err(e) => return Report::Denied(format!("{} (open {path} for writing)", errno_of(&e))),
    };
    match file.write_all(MARKER) {
        Ok(()) => Report::Escaped(format!("wrote {} bytes to {path}", MARKER.len())),
        Err(e) => Report::Escaped(format!("opened {path} for writing (write: {})", errno_of(&e))),
    }
}

/// Opens an existing PATH for writing and writes nothing: for `/proc/sysrq-trigger`,
/// `/proc/self/exe` and the like, where opening is the escape and a write would do harm.
pub fn open_write(path: &str) -> Report {
    match OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
    {
        Ok(_) => Report::Escaped(format!("opened {path} for writing")),
        Err(e) => Report::Denied(format!("{} (open {path} for writing)", errno_of(&e))),
    }
}

/// Creates a directory.
pub fn mkdir(path: &str) -> Report {
    Report::of(&format!("mkdir {path}"), fs::create_dir(path).map_err(|e| errno_of(&e)))
}

/// Removes a file.
pub fn unlink(path: &str) -> Report {
    Report::of(
        &format!("unlink {path}"),
        fs::remove_file(path).map_err(|e| errno_of(&e)),
    )
}

/// Changes a file's mode.
pub fn chmod(path: &str, mode: &str) -> Report {
    let Ok(mode) = u32::from_str_radix(mode, 8) else {
        return Report::Error(format!("`{mode}` is not an octal mode"));
    };
    Report::of(
        &format!("chmod {mode:o} {path}"),
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|e| errno_of(&e)),
    )
}

/// Lists a directory.
pub fn list(path: &str) -> Report {
    match fs::read_dir(path) {
        Ok(entries) => {
            let names: Vec<String> = entries
                .filter_map(Result::ok)
                .take(1000)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            let shown: Vec<&str> = names.iter().take(10).map(String::as_str).collect();
            Report::Escaped(format!("listed {path}: {} entries ({})", names.len(), shown.join(" ")))
        }
        Err(e) => Report::Denied(format!("{} (opendir {path})", errno_of(&e))),
    }
}

/// Reads PATH (at most 1 MiB) and looks for NEEDLE: an escape if it is there. For secrets
/// that could leak through `/proc/1/environ` and the like.
pub fn grep_file(path: &str, needle: &str) -> Report {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) => return Report::Denied(format!("{} (open {path})", errno_of(&e))),
    };
    let mut data = Vec::new();
    if let Err(e) = file.take(1 << 20).read_to_end(&mut data) {
        return Report::Denied(format!("{} (read {path})", errno_of(&e)));
    }
    let found = !needle.is_empty() && data.windows(needle.len()).any(|w| w == needle.as_bytes());
    if found {
        Report::Escaped(format!("found the needle in {path}"))
    } else {
        Report::Denied(format!("absent (read {} bytes of {path})", data.len()))
    }
}

fn mode_of(path: &str) -> Option<u32> {
    fs::metadata(path).ok().map(|m| m.permissions().mode())
}

/// Plants a setuid/setgid executable at PATH: created with mode 04755, then chmod 06755.
/// An escape if the file ends up with either bit: the file outlives the sandbox on the
/// host, owned by whoever the jail's uid maps to.
pub fn setuid_file(path: &str) -> Report {
    let payload = match fs::read("/bin/true") {
        Ok(p) => p,
        Err(e) => return Report::Error(format!("read /bin/true: {}", errno_of(&e))),
    };
    let created = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o4755)
        .open(path)
        .and_then(|mut f| f.write_all(&payload));
    if let Err(e) = created {
        return Report::Denied(format!("{} (create {path})", errno_of(&e)));
    }
    let suid_bits = 0o6000;
    if let Some(mode) = mode_of(path).filter(|m| m & suid_bits != 0) {
        return Report::Escaped(format!("created {path} with mode {mode:o}"));
    }
    let chmod = fs::set_permissions(path, fs::Permissions::from_mode(0o6755));
    match (chmod, mode_of(path)) {
        (_, Some(mode)) if mode & suid_bits != 0 => Report::Escaped(format!("chmod gave {path} mode {mode:o}")),
        (Err(e), _) => Report::Denied(format!("{} (chmod 6755 {path})", errno_of(&e))),
        (Ok(()), mode) => Report::Denied(format!("stripped (chmod 6755 left mode {:o})", mode.unwrap_or(0))),
    }
}

/// Gives a file at PATH the file capability CAP_SYS_ADMIN (a v2 `security.capability`
/// xattr).
pub fn setcap(path: &str) -> Report {
    if let Err(e) = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o755)
        .open(path)
    {
        return Report::Error(format!("create {path}: {}", errno_of(&e)));
    }
    let Ok(cpath) = sys::cstring(path) else {
        return Report::Error("bad path".to_owned());
    };
    // struct vfs_cap_data (revision 2): magic_etc, then {permitted, inheritable} x 2.
    const VFS_CAP_REVISION_2: u32 = 0x0200_0000;
    const VFS_CAP_FLAGS_EFFECTIVE: u32 = 0x1;
    const CAP_SYS_ADMIN_BIT: u32 = 1 << 21;
    let words: [u32; 5] = [VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE, CAP_SYS_ADMIN_BIT, 0, 0, 0];
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    let name = c"security.capability";
    // SAFETY: path and name are NUL-terminated; bytes is a live buffer of the given length.
    let r = unsafe { libc::setxattr(cpath.as_ptr(), name.as_ptr(), bytes.as_ptr().cast(), bytes.len(), 0) };
    Report::of("setxattr security.capability", sys::check_int(r))
}

/// Creates device nodes at PATH: the character device of `/dev/mem` (1:1) and the block
/// device of `/dev/sda` (8:0). A node that gets created is removed at once.
pub fn mknod(path: &str) -> Report {
    let Ok(cpath) = sys::cstring(path) else {
        return Report::Error("bad path".to_owned());
    };
    let mut results = Vec::new();
    for (what, kind, major, minor) in [
        ("char 1:1 (/dev/mem)", libc::S_IFCHR, 1, 1),
        ("block 8:0 (/dev/sda)", libc::S_IFBLK, 8, 0),
    ] {
        let dev = libc::makedev(major, minor);
        // SAFETY: cpath is NUL-terminated; mode and dev are plain values.
        let r = unsafe { libc::mknod(cpath.as_ptr(), kind | 0o600, dev) };
        let result = sys::check_int(r).map(|_| {
            // SAFETY: removing the node we just made, by the same valid path.
            unsafe { libc::unlink(cpath.as_ptr()) };
            "created (and removed)".to_owned()
        });
        results.push((format!("mknod {what}"), result));
    }
    Report::all(results)
}

/// Checks that every fd from 3 to 4095 is closed.
pub fn fds() -> Report {
    let mut open = Vec::new();
    for fd in 3..4096 {
        // SAFETY: F_GETFD only queries the descriptor table.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0 {
            let target = fs::read_link(format!("/proc/self/fd/{fd}"))
                .map(|p| p.display().to_string())
                .unwrap_or_else(|e| format!("? ({})", errno_of(&e)));
            open.push(format!("{fd} -> {target}"));
        }
    }
    if open.is_empty() {
        Report::Denied("none-open (fds 3..4095 are closed)".to_owned())
    } else {
        Report::Escaped(format!("open fds: {}", open.join(", ")))
    }
}

/// `openat(FD, NAME)`: reaches through a descriptor the jail should not have.
pub fn openat_fd(fd: &str, name: &str) -> Report {
    let Ok(fd) = fd.parse::<libc::c_int>() else {
        return Report::Error(format!("`{fd}` is not an fd number"));
    };
    let Ok(cname) = sys::cstring(name) else {
        return Report::Error("bad name".to_owned());
    };
    // SAFETY: cname is NUL-terminated; a bad fd only makes openat fail.
    let r = unsafe { libc::openat(fd, cname.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    match sys::check_int(r) {
        Ok(file_fd) => {
            let mut buf = [0u8; 256];
            // SAFETY: reading into a local buffer from the fd we just opened.
            let n = unsafe { libc::read(file_fd, buf.as_mut_ptr().cast(), buf.len()) };
            sys::close(file_fd);
            Report::Escaped(format!("openat({fd}, {name}) worked, read {n} bytes"))
        }
        Err(e) => Report::Denied(format!("{e} (openat {fd} {name})")),
    }
}

/// argv and envp for an exec, prepared before forking.
struct ExecArgs {
    path: CString,
    argv0: CString,
    argv: [*const libc::c_char; 2],
    envp: [*const libc::c_char; 1],
}

impl ExecArgs {
    fn new(path: &str) -> Result<Box<ExecArgs>, String> {
        let path_c = sys::cstring(path)?;
        let argv0 = sys::cstring(path)?;
        let mut args = Box::new(ExecArgs {
            path: path_c,
            argv0,
            argv: [std::ptr::null(); 2],
            envp: [std::ptr::null()],
        });
        args.argv[0] = args.argv0.as_ptr();
        Ok(args)
    }
}

/// Reports an exec attempt made in a child: the errno if exec failed, else how the new
/// program ended.
fn exec_report(what: &str, end: Result<ChildEnd, String>) -> Report {
    match end {
        Err(e) => Report::Error(e),
        Ok(ChildEnd::Returned(r)) if r < 0 => Report::Denied(format!("{} ({what})", Errno(-r as i32))),
        Ok(ChildEnd::Returned(r)) => Report::Error(format!("{what} returned {r}")),
        Ok(ChildEnd::Exited(code)) => Report::Escaped(format!("{what} ran the program (exit status {code})")),
        Ok(ChildEnd::Signaled(sig)) => Report::Denied(format!(
            "{} ({what}: child killed by signal {sig})",
            sys::signal_name(sig)
        )),
        Ok(ChildEnd::TimedOut) => Report::Error(format!("{what} did not finish")),
    }
}

fn execve_in_child(path: &str) -> Result<ChildEnd, String> {
    let args = ExecArgs::new(path)?;
    sys::in_child(
        || {
            // SAFETY: path, argv and envp are NUL-terminated and live in `args`, which
            // outlives the call; on success this never returns.
            unsafe {
                libc::execve(args.path.as_ptr(), args.argv.as_ptr(), args.envp.as_ptr());
            }
            -i64::from(Errno::last().0)
        },
        EXEC_BOUND,
    )
}

/// `execve("/bin/true")` from the running program (in a forked child).
pub fn exec_true() -> Report {
    exec_report("execve /bin/true", execve_in_child("/bin/true"))
}

/// `execveat(AT_FDCWD, "/bin/true")`: the other exec syscall.
pub fn execveat_true() -> Report {
    let args = match ExecArgs::new("/bin/true") {
        Ok(a) => a,
        Err(e) => return Report::Error(e),
    };
    let end = sys::in_child(
        || {
            // SAFETY: as for execve; execveat takes the same pointers plus dirfd and flags.
            unsafe {
                libc::syscall(
                    libc::SYS_execveat,
                    libc::AT_FDCWD,
                    args.path.as_ptr(),
                    args.argv.as_ptr(),
                    args.envp.as_ptr(),
                    0,
                );
            }
            -i64::from(Errno::last().0)
        },
        EXEC_BOUND,
    );
    exec_report("execveat /bin/true", end)
}

/// Copies `/bin/true` into DIR as an executable payload; the probe errors if it can't.
fn plant_payload(dir: &str) -> Result<String, Report> {
    let payload = format!("{}/mcp-j-payload-{}", dir.trim_end_matches('/'), std::process::id());
    let bytes = fs::read("/bin/true").map_err(|e| Report::Error(format!("read /bin/true: {}", errno_of(&e))))?;
    let _ = fs::remove_file(&payload);
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o755)
        .open(&payload)
        .and_then(|mut f| f.write_all(&bytes))
        .map_err(|e| Report::Error(format!("could not plant a payload in {dir}: {}", errno_of(&e))))?;
    fs::set_permissions(&payload, fs::Permissions::from_mode(0o755))
        .map_err(|e| Report::Error(format!("chmod 755 {payload}: {}", errno_of(&e))))?;
    Ok(payload)
}

/// Copies `/bin/true` into a writable DIR, makes it executable and execs it.
pub fn exec_payload(dir: &str) -> Report {
    let payload = match plant_payload(dir) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let report = exec_report(&format!("execve {payload}"), execve_in_child(&payload));
    let _ = fs::remove_file(&payload);
    report
}

/// The dynamic loader, which maps a program itself: `ld.so ./payload` sidesteps execve's
/// own noexec check, so only the mmap check can stop it.
fn loader() -> Option<&'static str> {
    [
        "/lib64/ld-linux-x86-64.so.2",
        "/lib/ld-linux-aarch64.so.1",
        "/lib/ld-linux-riscv64-lp64d.so.1",
    ]
    .into_iter()
    .find(|p| fs::metadata(p).is_ok())
}

/// Plants a payload in DIR and runs it through the dynamic loader.
pub fn ldso_exec(dir: &str) -> Report {
    let Some(ldso) = loader() else {
        return Report::Error("no dynamic loader found".to_owned());
    };
    let payload = match plant_payload(dir) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let out = std::process::Command::new(ldso)
        .arg(&payload)
        .stdin(std::process::Stdio::null())
        .output();
    let _ = fs::remove_file(&payload);
    match out {
        Err(e) => Report::Denied(format!("{} (execve {ldso})", errno_of(&e))),
        Ok(out) if out.status.success() => Report::Escaped(format!("{ldso} {payload} ran the payload")),
        Ok(out) => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            Report::Denied(format!(
                "loader-refused ({}: {})",
                out.status,
                stderr.lines().next().unwrap_or("")
            ))
        }
    }
}

/// Plants a payload in DIR and maps it executable, as a loader or a JIT would.
pub fn mmap_exec(dir: &str) -> Report {
    let payload = match plant_payload(dir) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let file = File::open(&payload);
    let _ = fs::remove_file(&payload);
    let file = match file {
        Ok(f) => f,
        Err(e) => return Report::Error(format!("open {payload}: {}", errno_of(&e))),
    };
    use std::os::fd::AsRawFd;
    // SAFETY: a fresh private read+exec mapping of a file we hold open; not touched.
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_EXEC,
            libc::MAP_PRIVATE,
            file.as_raw_fd(),
            0,
        )
    };
    if addr == libc::MAP_FAILED {
        return Report::Denied(format!("{} (mmap PROT_EXEC {payload})", Errno::last()));
    }
    // SAFETY: unmapping the mapping made just above.
    unsafe { libc::munmap(addr, 4096) };
    Report::Escaped(format!("mapped {payload} PROT_EXEC"))
}

/// Writes `/bin/true` into a memfd and executes it: a file in writable memory, which no
/// mount flag covers.
pub fn memfd_exec() -> Report {
    let bytes = match fs::read("/bin/true") {
        Ok(b) => b,
        Err(e) => return Report::Error(format!("read /bin/true: {}", errno_of(&e))),
    };
    const MFD_EXEC: libc::c_uint = 0x10;
    let name = c"mcp-j-payload";
    // SAFETY: name is NUL-terminated; flags are plain values. MFD_EXEC asks for an
    // executable memfd where the kernel knows the flag; older kernels reject it (EINVAL)
    // and make memfds executable anyway.
    let mut fd = unsafe { libc::memfd_create(name.as_ptr(), MFD_EXEC) };
    if fd < 0 && Errno::last().0 == libc::EINVAL {
        // SAFETY: as above, without the flag.
        fd = unsafe { libc::memfd_create(name.as_ptr(), 0) };
    }
    if fd < 0 {
        return Report::Denied(format!("{} (memfd_create)", Errno::last()));
    }
    use std::os::fd::FromRawFd;
    // SAFETY: fd is a fresh descriptor that nothing else owns.
    let mut file = unsafe { File::from_raw_fd(fd) };
    if let Err(e) = file.write_all(&bytes) {
        return Report::Error(format!("write memfd: {}", errno_of(&e)));
    }
    // Exec refuses a file that is open for writing (ETXTBSY): keep a read-only
    // descriptor of the memfd and drop the writable one.
    let reader = match File::open(format!("/proc/self/fd/{fd}")) {
        Ok(r) => r,
        Err(e) => return Report::Error(format!("reopen memfd: {}", errno_of(&e))),
    };
    drop(file);
    use std::os::fd::AsRawFd;
    let path = format!("/proc/self/fd/{}", reader.as_raw_fd());
    let report = exec_report(&format!("execve memfd {path}"), execve_in_child(&path));
    drop(reader);
    report
}

/// Hard-links SRC to DST: a read-only file linked into a writable directory could be
/// written through the link.
pub fn link(src: &str, dst: &str) -> Report {
    Report::of(
        &format!("link {src} {dst}"),
        fs::hard_link(src, dst).map_err(|e| errno_of(&e)),
    )
}

/// Renames SRC to DST: moving a file out of a read-only place.
pub fn rename(src: &str, dst: &str) -> Report {
    Report::of(
        &format!("rename {src} {dst}"),
        fs::rename(src, dst).map_err(|e| errno_of(&e)),
    )
}
