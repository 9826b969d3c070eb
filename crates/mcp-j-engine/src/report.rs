//! What the jail tells the supervisor, over a pipe, as fixed-size records; and the
//! per-layer sandbox report built from them.
//!
//! The jail's processes cannot return typed errors across `fork`/`execve`, so each setup
//! step that fails writes `SetupFailed { step, errno }` and exits; the supervisor turns it
//! into [`crate::SandboxError::Setup`]. Records are 16 bytes, well under `PIPE_BUF`, so
//! each write is atomic even with several writers.

use std::os::fd::RawFd;

use serde::Serialize;

/// The helper reads the JSON spec from this descriptor until EOF.
pub const SPEC_FD: RawFd = 3;
/// The helper, init and the program (until execve) write [`Record`]s here.
pub const REPORT_FD: RawFd = 4;
/// The descriptors of the user's paths (`--ro`, `--rw`, the workdir), opened once on the
/// host, are passed from this number up; the spec records which path is at which number.
pub const FIRST_PATH_FD: RawFd = 5;

/// A numbered step of the jail's setup: one per step of docs/SANDBOX.md, in its order and
/// with its number (a unit test reads the page and checks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[repr(u32)]
#[allow(missing_docs)]
pub enum Step {
    ReadSpec = 1,
    DieWithSupervisor,
    CloseInheritedFds,
    PlanFilesystem,
    OpenUserPaths,
    IpcNamespace,
    CloneInit,
    MapIds,
    ReportAndWait,
    WaitForIdMaps,
    NamespaceLimitsFirstHalf,
    BecomeJailUser,
    MakeMountsPrivate,
    BuildRoot,
    PivotRoot,
    RootReadOnly,
    Hostname,
    Network,
    NamespaceLimitsSecondHalf,
    ForkProgram,
    InitLoop,
    Signals,
    Setsid,
    Chdir,
    Rlimits,
    Landlock,
    ResolveProgram,
    DropCapabilities,
    NoNewPrivs,
    Seccomp,
    CloseDescriptors,
    Execve,
}

impl Step {
    /// Every step, in order.
    pub const ALL: [Step; 32] = [
        Step::ReadSpec,
        Step::DieWithSupervisor,
        Step::CloseInheritedFds,
        Step::PlanFilesystem,
        Step::OpenUserPaths,
        Step::IpcNamespace,
        Step::CloneInit,
        Step::MapIds,
        Step::ReportAndWait,
        Step::WaitForIdMaps,
        Step::NamespaceLimitsFirstHalf,
        Step::BecomeJailUser,
        Step::MakeMountsPrivate,
        Step::BuildRoot,
        Step::PivotRoot,
        Step::RootReadOnly,
        Step::Hostname,
        Step::Network,
        Step::NamespaceLimitsSecondHalf,
        Step::ForkProgram,
        Step::InitLoop,
        Step::Signals,
        Step::Setsid,
        Step::Chdir,
        Step::Rlimits,
        Step::Landlock,
        Step::ResolveProgram,
        Step::DropCapabilities,
        Step::NoNewPrivs,
        Step::Seccomp,
        Step::CloseDescriptors,
        Step::Execve,
    ];

    fn from_u32(v: u32) -> Option<Step> {
        Step::ALL.iter().copied().find(|s| *s as u32 == v)
    }

    /// The step's title in docs/SANDBOX.md (without its markup).
    pub fn name(self) -> &'static str {
        match self {
            Step::ReadSpec => "read the spec",
            Step::DieWithSupervisor => "die with the supervisor",
            Step::CloseInheritedFds => "close inherited descriptors",
            Step::PlanFilesystem => "plan the filesystem",
            Step::OpenUserPaths => "open the user's paths",
            Step::IpcNamespace => "an IPC namespace whose limits can be set",
            Step::CloneInit => "clone init",
            Step::MapIds => "map one uid and one gid",
            Step::ReportAndWait => "report and wait",
            Step::WaitForIdMaps => "wait for the id maps",
            Step::NamespaceLimitsFirstHalf => "namespace limits, first half",
            Step::BecomeJailUser => "become the jail's user, die with the helper",
            Step::MakeMountsPrivate => "make every mount private",
            Step::BuildRoot => "build the root",
            Step::PivotRoot => "pivot_root",
            Step::RootReadOnly => "the root becomes read-only",
            Step::Hostname => "hostname",
            Step::Network => "network",
            Step::NamespaceLimitsSecondHalf => "namespace limits, second half",
            Step::ForkProgram => "fork the program",
            Step::InitLoop => "init's loop",
            Step::Signals => "signals",
            Step::Setsid => "setsid",
            Step::Chdir => "chdir",
            Step::Rlimits => "rlimits",
            Step::Landlock => "Landlock",
            Step::ResolveProgram => "resolve the program",
            Step::DropCapabilities => "drop every capability",
            Step::NoNewPrivs => "no_new_privs",
            Step::Seccomp => "seccomp",
            Step::CloseDescriptors => "close every descriptor",
            Step::Execve => "execve",
        }
    }
}

/// A setup step that failed, with its errno.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Failure {
    pub(crate) step: Step,
    pub(crate) errno: i32,
}

/// Attach the step to any error that carries an errno.
pub(crate) trait AtStep<T> {
    fn at(self, step: Step) -> Result<T, Failure>;
}

impl<T> AtStep<T> for std::io::Result<T> {
    fn at(self, step: Step) -> Result<T, Failure> {
        self.map_err(|e| Failure {
            step,
            errno: e.raw_os_error().unwrap_or(libc::EIO),
        })
    }
}

impl<T> AtStep<T> for rustix::io::Result<T> {
    fn at(self, step: Step) -> Result<T, Failure> {
        self.map_err(|e| Failure {
            step,
            errno: e.raw_os_error(),
        })
    }
}

/// One message from the jail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    /// The jail's init started; its pid as the supervisor sees it.
    InitStarted {
        /// Host pid of the jail's pid 1.
        host_pid: i32,
    },
    /// A setup step failed with an errno (0 when the failure had none).
    SetupFailed {
        /// Which step.
        step: Step,
        /// The errno.
        errno: i32,
    },
    /// Landlock was applied with this status and ABI.
    Landlock {
        /// How much of the ruleset the kernel enforces.
        status: LayerStatus,
        /// The ABI the kernel offers.
        abi: i32,
    },
    /// `execve` of the program failed.
    ExecFailed {
        /// The errno.
        errno: i32,
    },
    /// The program exited with this code.
    ProgramExited {
        /// Exit code.
        code: i32,
    },
    /// A signal killed the program.
    ProgramSignaled {
        /// Signal number.
        signal: i32,
    },
    /// Init refused an `execve` under `--no-subprocess`.
    ExecDenied {
        /// The errno the caller got.
        errno: i32,
    },
    /// Init set the namespace limits: the bit set of
    /// [`crate::namespace_limits::LimitGroup`]s applied in full.
    NamespaceLimits {
        /// The bit set.
        applied: u32,
    },
    /// Part of the path of the program the next [`Record::ExecDenied`] refused, for the
    /// user's message only: NUL-padded, in order (init is the only writer by then).
    ExecDeniedName {
        /// Up to 12 bytes of the path.
        chunk: [u8; NAME_CHUNK],
    },
}

/// Bytes of a program path per [`Record::ExecDeniedName`].
pub const NAME_CHUNK: usize = 12;

/// The tag of [`Record::ExecDeniedName`], whose payload is 12 raw bytes, not two numbers.
const EXEC_DENIED_NAME_TAG: u32 = 9;

/// Size of one encoded record.
pub const RECORD_SIZE: usize = 16;

impl Record {
    /// Encode as `[tag, a, b, 0]`, native-endian u32s (both ends are this machine).
    pub fn encode(self) -> [u8; RECORD_SIZE] {
        if let Record::ExecDeniedName { chunk } = self {
            let mut out = [0u8; RECORD_SIZE];
            out[0..4].copy_from_slice(&EXEC_DENIED_NAME_TAG.to_ne_bytes());
            out[4..].copy_from_slice(&chunk);
            return out;
        }
        let (tag, a, b): (u32, u32, i32) = match self {
            Record::InitStarted { host_pid } => (1, 0, host_pid),
            Record::SetupFailed { step, errno } => (2, step as u32, errno),
            Record::Landlock { status, abi } => (3, status as u32, abi),
            Record::ExecFailed { errno } => (4, 0, errno),
            Record::ProgramExited { code } => (5, 0, code),
            Record::ProgramSignaled { signal } => (6, 0, signal),
            Record::ExecDenied { errno } => (7, 0, errno),
            Record::NamespaceLimits { applied } => (8, applied, 0),
            Record::ExecDeniedName { .. } => (EXEC_DENIED_NAME_TAG, 0, 0), // encoded above
        };
        let mut out = [0u8; RECORD_SIZE];
        out[0..4].copy_from_slice(&tag.to_ne_bytes());
        out[4..8].copy_from_slice(&a.to_ne_bytes());
        out[8..12].copy_from_slice(&b.to_ne_bytes());
        out
    }

    /// Decode one record; `None` for anything malformed.
    pub fn decode(buf: &[u8; RECORD_SIZE]) -> Option<Record> {
        let word = |i: usize| [buf[i], buf[i + 1], buf[i + 2], buf[i + 3]];
        let tag = u32::from_ne_bytes(word(0));
        let a = u32::from_ne_bytes(word(4));
        let b = i32::from_ne_bytes(word(8));
        Some(match tag {
            1 => Record::InitStarted { host_pid: b },
            2 => Record::SetupFailed {
                step: Step::from_u32(a)?,
                errno: b,
            },
            3 => Record::Landlock {
                status: LayerStatus::from_u32(a)?,
                abi: b,
            },
            4 => Record::ExecFailed { errno: b },
            5 => Record::ProgramExited { code: b },
            6 => Record::ProgramSignaled { signal: b },
            7 => Record::ExecDenied { errno: b },
            8 => Record::NamespaceLimits { applied: a },
            EXEC_DENIED_NAME_TAG => {
                let mut chunk = [0u8; NAME_CHUNK];
                chunk.copy_from_slice(&buf[4..]);
                Record::ExecDeniedName { chunk }
            }
            _ => return None,
        })
    }
}

/// How much of a protection layer is in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
#[repr(u32)]
pub enum LayerStatus {
    /// Not in force at all.
    Absent = 0,
    /// Some of it is in force; `means` says what is missing.
    Partial = 1,
    /// Fully in force.
    Enforced = 2,
}

impl LayerStatus {
    fn from_u32(v: u32) -> Option<LayerStatus> {
        match v {
            0 => Some(LayerStatus::Absent),
            1 => Some(LayerStatus::Partial),
            2 => Some(LayerStatus::Enforced),
            _ => None,
        }
    }
}

/// One protection layer and how it is enforced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Layer {
    /// Short stable name (`namespaces`, `landlock`, `seccomp`, `memory`, …).
    pub name: String,
    /// Enforced, partial or absent.
    pub status: LayerStatus,
    /// By what means (e.g. `Landlock ABI 7`, `RLIMIT_NOFILE`).
    pub means: String,
}

impl Layer {
    /// A layer.
    pub fn new(name: &str, status: LayerStatus, means: impl Into<String>) -> Layer {
        Layer {
            name: name.to_string(),
            status,
            means: means.into(),
        }
    }
}

/// Every layer of one sandbox, as set up.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SandboxReport {
    /// The layers, in setup order.
    pub layers: Vec<Layer>,
}

impl SandboxReport {
    /// The limits that hold per process (or per file) only, not for the jail as a whole:
    /// open files and file size always; memory when no cgroup bounds the jail's total
    /// (then only `RLIMIT_DATA`/`RLIMIT_AS` per process remain).
    #[must_use]
    pub fn per_process_only(&self) -> Vec<&str> {
        self.layers
            .iter()
            .filter(|l| match l.name.as_str() {
                "fds" | "file_size" => true,
                "memory" => l.status != LayerStatus::Enforced,
                _ => false,
            })
            .map(|l| l.name.as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_record_round_trips() {
        let mut records = vec![
            Record::InitStarted { host_pid: 4242 },
            Record::Landlock {
                status: LayerStatus::Partial,
                abi: 3,
            },
            Record::ExecFailed { errno: 2 },
            Record::ProgramExited { code: 255 },
            Record::ProgramSignaled { signal: 9 },
            Record::ExecDenied { errno: 1 },
            Record::NamespaceLimits { applied: 3 },
            Record::ExecDeniedName {
                chunk: *b"/usr/bin/git",
            },
        ];
        for step in Step::ALL {
            records.push(Record::SetupFailed { step, errno: 13 });
        }
        for r in records {
            assert_eq!(Record::decode(&r.encode()), Some(r));
        }
    }

    #[test]
    fn malformed_records_are_rejected() {
        let mut buf = [0u8; RECORD_SIZE];
        assert_eq!(Record::decode(&buf), None);
        buf[0] = 2;
        buf[4] = 200; // no such step
        assert_eq!(Record::decode(&buf), None);
        buf[0] = 3;
        buf[4] = 9; // no such status
        assert_eq!(Record::decode(&buf), None);
    }

    #[test]
    fn per_process_only_names_memory_without_a_cgroup() {
        let report = |memory| SandboxReport {
            layers: vec![
                Layer::new("memory", memory, "m"),
                Layer::new("pids", LayerStatus::Enforced, "p"),
                Layer::new("fds", LayerStatus::Enforced, "f"),
                Layer::new("file_size", LayerStatus::Enforced, "s"),
            ],
        };
        assert_eq!(
            report(LayerStatus::Absent).per_process_only(),
            ["memory", "fds", "file_size"]
        );
        assert_eq!(report(LayerStatus::Enforced).per_process_only(), ["fds", "file_size"]);
    }

    #[test]
    fn step_names_are_unique() {
        let mut names: Vec<_> = Step::ALL.iter().map(|s| s.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Step::ALL.len());
    }

    /// The numbered steps of docs/SANDBOX.md (`N. **Title**` at the start of a line, up
    /// to the section after the jail's own steps), as (number, title without markup).
    fn documented_steps(doc: &str) -> Vec<(u32, String)> {
        let mut steps = Vec::new();
        for line in doc.lines() {
            if line.starts_with("## Before the jail") {
                break;
            }
            let Some((number, rest)) = line.split_once(". **") else {
                continue;
            };
            let Ok(number) = number.parse::<u32>() else {
                continue;
            };
            let title = rest.split("**").next().unwrap_or_default();
            steps.push((number, title.replace('`', "").trim_end_matches('.').to_string()));
        }
        steps
    }

    #[test]
    fn steps_are_those_of_docs_sandbox_md_in_order() {
        let doc = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/SANDBOX.md"));
        let documented = documented_steps(doc);
        let ours: Vec<(u32, String)> = Step::ALL.iter().map(|s| (*s as u32, s.name().to_string())).collect();
        let numbers: Vec<u32> = documented.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            numbers,
            (1..=documented.len() as u32).collect::<Vec<_>>(),
            "numbered 1, 2, 3, …"
        );
        assert_eq!(documented.len(), Step::ALL.len(), "{documented:#?}");
        for ((n, title), (ours_n, name)) in documented.iter().zip(&ours) {
            assert_eq!(n, ours_n, "step {title}");
            assert!(
                title.eq_ignore_ascii_case(name),
                "step {n}: docs/SANDBOX.md says {title:?}, Step::name {name:?}"
            );
        }
    }

    #[test]
    fn documented_steps_are_parsed_from_the_markup() {
        let doc = "1. **Read.** text\n   2. **Indented**, not a step\n2. **`pivot_root`** into\n## Before the jail\n1. **Walks**\n";
        assert_eq!(
            documented_steps(doc),
            [(1, "Read".to_string()), (2, "pivot_root".to_string())]
        );
    }
}
