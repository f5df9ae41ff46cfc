//! Supervised child processes that cannot outlive their parent.
//!
//! Every child is started in its own process group (so one `killpg` takes its helpers
//! along) with `PR_SET_PDEATHSIG = SIGKILL` (so a parent killed with SIGKILL, or dying on
//! an unhandled Ctrl-C, still takes it along). Dropping a [`ManagedProcess`] kills the
//! group and reaps the child.
//!
//! Caveat of `PR_SET_PDEATHSIG`: it fires when the *thread* that spawned the child exits.
//! Spawn from a long-lived thread (a tokio worker or the main thread), not from a
//! short-lived `spawn_blocking` task.
#![allow(unsafe_code)]

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Errors from starting or waiting for a supervised process.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("{tool} not found: {hint}")]
    ToolMissing { tool: String, hint: String },
    #[error("port {0} on 127.0.0.1 is already in use; pick another port or stop whatever holds it")]
    PortInUse(u16),
    #[error("cannot find a free port on 127.0.0.1: {0}")]
    NoFreePort(std::io::Error),
    #[error("cannot create log file {path}: {source}")]
    Log {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start {name} ({program}): {source}")]
    Spawn {
        name: String,
        program: String,
        source: std::io::Error,
    },
    #[error("{name} exited during startup ({status}); last output:\n{tail}")]
    ExitedEarly {
        name: String,
        status: ExitStatus,
        tail: String,
    },
    #[error("{name} did not become ready within {timeout:?} (log: {log})")]
    NotReady {
        name: String,
        timeout: Duration,
        log: PathBuf,
    },
}

/// Where a child's stdout and stderr go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Output {
    /// A log file (see [`ManagedProcess::log_path`]); quoted in startup errors.
    #[default]
    LogFile,
    /// The parent's stdout/stderr (e.g. `kiln dev` showing Lambda logs).
    Inherit,
}

/// A child process in its own process group, killed (with its group) on drop.
#[derive(Debug)]
pub struct ManagedProcess {
    name: String,
    child: Child,
    log: PathBuf,
}

impl ManagedProcess {
    /// Starts `command` with stdout and stderr appended to a log file under
    /// `$TMPDIR/kiln-devstack/`. `name` is used in errors and the log file name.
    pub fn spawn(name: &str, command: Command) -> Result<Self, ProcessError> {
        Self::spawn_with(name, command, Output::LogFile)
    }

    /// Like [`ManagedProcess::spawn`], choosing where the child's output goes.
    pub fn spawn_with(
        name: &str,
        mut command: Command,
        output: Output,
    ) -> Result<Self, ProcessError> {
        let dir = std::env::temp_dir().join("kiln-devstack");
        let log = dir.join(format!(
            "{name}-{}-{}.log",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        let open = || -> std::io::Result<(File, File)> {
            std::fs::create_dir_all(&dir)?;
            let out = File::create(&log)?;
            let err = out.try_clone()?;
            Ok((out, err))
        };
        let (out, err) = open().map_err(|source| ProcessError::Log {
            path: log.clone(),
            source,
        })?;
        command.stdin(Stdio::null()).process_group(0);
        match output {
            Output::LogFile => {
                command.stdout(Stdio::from(out)).stderr(Stdio::from(err));
            }
            // The log file then stays empty; error messages cannot quote the output.
            Output::Inherit => {
                command.stdout(Stdio::inherit()).stderr(Stdio::inherit());
            }
        }
        // SAFETY: the closure runs in the forked child before exec and only calls
        // async-signal-safe functions (prctl, getppid, raise) without allocating.
        unsafe {
            let parent = libc::getpid();
            command.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent may have died between fork and prctl: then nobody would
                // ever signal us.
                if libc::getppid() != parent {
                    libc::raise(libc::SIGKILL);
                }
                Ok(())
            });
        }
        let program = command.get_program().to_string_lossy().into_owned();
        let child = command.spawn().map_err(|source| ProcessError::Spawn {
            name: name.to_owned(),
            program,
            source,
        })?;
        tracing::debug!(name, pid = child.id(), log = %log.display(), "started");
        Ok(ManagedProcess {
            name: name.to_owned(),
            child,
            log,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The file receiving the child's stdout and stderr.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last `lines` lines of the child's output (for error messages).
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// `Some(status)` once the child has exited.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Fails with [`ProcessError::ExitedEarly`] if the child has already exited.
    pub fn check_running(&mut self) -> Result<(), ProcessError> {
        match self.try_status() {
            Some(status) => Err(ProcessError::ExitedEarly {
                name: self.name.clone(),
                status,
                tail: self.log_tail(30),
            }),
            None => Ok(()),
        }
    }

    /// Polls `probe` until it returns true, the child exits, or `timeout` passes.
    pub async fn wait_ready<F, Fut>(
        &mut self,
        timeout: Duration,
        mut probe: F,
    ) -> Result<(), ProcessError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_running()?;
            if probe().await {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(ProcessError::NotReady {
                    name: self.name.clone(),
                    timeout,
                    log: self.log.clone(),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Kills the whole process group and reaps the child. Idempotent.
    pub fn kill(&mut self) {
        // Even when the leader has exited, helpers it left in its group get killed here.
        let pgid = self.child.id() as libc::pid_t;
        // SAFETY: plain syscall; the group id is our own child's pid (it leads its group).
        unsafe {
            libc::killpg(pgid, libc::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ManagedProcess {
    fn drop(&mut self) {
        self.kill();
        tracing::debug!(name = %self.name, "stopped");
    }
}

/// A port on 127.0.0.1 that was free a moment ago (the OS picks it).
pub fn free_port() -> Result<u16, ProcessError> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(ProcessError::NoFreePort)?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(ProcessError::NoFreePort)
}

/// `port` if given and bindable, else a free one. A taken explicit port is a clear error.
pub fn choose_port(port: Option<u16>) -> Result<u16, ProcessError> {
    match port {
        None | Some(0) => free_port(),
        Some(p) => match TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, p))) {
            Ok(_) => Ok(p),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(ProcessError::PortInUse(p)),
            Err(e) => Err(ProcessError::NoFreePort(e)),
        },
    }
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
pub async fn port_open(port: u16) -> bool {
    tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port))
        .await
        .is_ok()
}

/// The local addresses of every TCP socket listening on `port` (from `/proc/net/tcp`
/// and `tcp6`, as `ss -ltn` reads them): lets tests prove a server binds loopback only.
pub fn listening_addresses(port: u16) -> Vec<std::net::IpAddr> {
    let mut out = Vec::new();
    for (file, v6) in [("/proc/net/tcp", false), ("/proc/net/tcp6", true)] {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st ...; st 0A is LISTEN.
            let (Some(local), Some("0A")) = (cols.get(1), cols.get(3).copied()) else {
                continue;
            };
            let Some((addr, p)) = local.split_once(':') else {
                continue;
            };
            if u16::from_str_radix(p, 16).ok() != Some(port) {
                continue;
            }
            if let Some(ip) = proc_net_addr(addr, v6) {
                out.push(ip);
            }
        }
    }
    out
}

/// `/proc/net/tcp*` addresses: hex words as the kernel prints each 32-bit word of the
/// address, native byte order (127.0.0.1 is `0100007F` on x86).
fn proc_net_addr(hex: &str, v6: bool) -> Option<std::net::IpAddr> {
    let mut bytes = Vec::with_capacity(16);
    for i in 0..hex.len() / 8 {
        let word = u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16).ok()?;
        bytes.extend(word.to_ne_bytes());
    }
    match (v6, bytes.len()) {
        (false, 4) => Some(std::net::Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]).into()),
        (true, 16) => {
            let octets: [u8; 16] = bytes.try_into().ok()?;
            Some(std::net::Ipv6Addr::from(octets).into())
        }
        _ => None,
    }
}

/// Whether a process with this pid exists (signal 0 probe).
pub fn pid_alive(pid: u32) -> bool {
    // SAFETY: kill with signal 0 only checks for existence and permission.
    let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
    if rc == 0 {
        // A zombie still "exists"; treat it as dead.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat
            .rsplit(')')
            .next()
            .and_then(|s| s.split_whitespace().next());
        return state != Some("Z");
    }
    false
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM: `kiln dev` awaits it, then drops its
/// processes so each group is killed. (A parent that dies without running destructors
/// still takes its direct children along through `PR_SET_PDEATHSIG`.)
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let terminate = async {
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}
