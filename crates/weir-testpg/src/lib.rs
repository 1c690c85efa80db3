//! `weir-testpg`: a throwaway PostgreSQL server for the benchmarks'
//! baselines and for the tests of what talks to PostgreSQL (the SDK's
//! transactional outbox): `initdb` into a scratch directory, `postgres` on
//! a free loopback port with durable commits, stopped when dropped (also
//! when a benchmark or a test fails half-way), so nothing outlives the run
//! but the files in the caller's scratch directory, which the caller
//! removes. It was `weir-bench`'s `pg` module; it is a crate of its own so
//! tests of other crates start PostgreSQL the same way without copying it
//! (a dev-dependency there, never a dependency of what ships).
//!
//! ```no_run
//! let dir = tempfile::tempdir()?; // its parents must let `nobody` in when root
//! let server = weir_testpg::PgServer::start(dir.path())?;
//! let mut db = server.connect()?;
//! db.batch_execute("CREATE TABLE t (n int)")?;
//! println!("{}", server.url());
//! # Ok::<(), anyhow::Error>(())
//! ```
//!
//! PostgreSQL refuses to run as root. When the benchmark is root (as on the
//! project's machines and in CI), `initdb` and the server run as the
//! system's `nobody`, which every Debian system has: no user is created and
//! the machine's user database is left as it was. The privileges are
//! dropped by the standard library in the child before `exec`
//! (`setgroups`, `setgid`, `setuid`, as `setpriv --clear-groups` does),
//! which needs no helper program. The data directory is created by us and
//! handed to `nobody` (mode 0700); its parent directories must let `nobody`
//! pass through, which [`PgServer::start`] checks up front. Only loopback
//! clients can connect (`listen_addresses=127.0.0.1`, no Unix socket), and
//! they need no password (`initdb --auth=trust`): the cluster holds
//! nothing but benchmark data and lives for one run.

use std::fs::File;
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// The database superuser `initdb` creates; the benchmark connects as it.
const SUPERUSER: &str = "weir";
/// The system user the cluster runs as when the benchmark is root.
pub const UNPRIVILEGED_USER: &str = "nobody";
/// How long the server may take to accept connections, and to stop.
const START_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes of the server's log quoted when it fails.
const LOG_TAIL_BYTES: usize = 4096;

/// Settings given on the server's command line; everything else is
/// PostgreSQL's default (shared_buffers, wal_sync_method, commit_delay,
/// checkpoints, autovacuum). `fsync` and `synchronous_commit` are the
/// defaults too, stated so that no configuration file can weaken the
/// baseline. Debian's default socket directory (`/var/run/postgresql`) is
/// not writable by `nobody`, and clients here use TCP anyway, so there is
/// no Unix socket.
const SETTINGS: [(&str, &str); 4] = [
    ("listen_addresses", "127.0.0.1"),
    ("unix_socket_directories", ""),
    ("fsync", "on"),
    ("synchronous_commit", "on"),
];

/// Settings read back from the running server for the report.
pub const REPORTED_SETTINGS: [&str; 8] = [
    "fsync",
    "synchronous_commit",
    "wal_sync_method",
    "full_page_writes",
    "shared_buffers",
    "commit_delay",
    "wal_level",
    "max_wal_size",
];

/// A user to run the cluster as, by id.
#[derive(Debug, Clone, Copy)]
struct RunAs {
    uid: u32,
    gid: u32,
}

/// A running `postgres`, stopped (fast shutdown) when dropped.
#[derive(Debug)]
pub struct PgServer {
    child: Child,
    port: u16,
    log_path: PathBuf,
    /// Who the server runs as, for the report.
    pub user: String,
}

impl PgServer {
    /// Creates a cluster in `dir/postgres` (`dir` must exist and be empty
    /// of that name) and starts it on a free loopback port; returns once it
    /// accepts connections.
    pub fn start(dir: &Path) -> anyhow::Result<Self> {
        let bin = bin_dir()?;
        let run_as = unprivileged_user()?;
        let data = dir.join("postgres");
        std::fs::create_dir(&data).with_context(|| format!("create {}", data.display()))?;
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700))?;
        if let Some(user) = run_as {
            std::os::unix::fs::chown(&data, Some(user.uid), Some(user.gid))
                .with_context(|| format!("give {} to {UNPRIVILEGED_USER}", data.display()))?;
            check_reachable(&data, user)?;
        }

        // --no-sync: initdb's own fsync of the template files costs
        // seconds and protects nothing here (the cluster is thrown away);
        // the server itself runs with fsync=on. The C locale keeps text
        // comparison (stream ids in the unique index) byte-wise, as Weir's.
        let out = command(&bin.join("initdb"), run_as, &data)
            .arg("-D")
            .arg(&data)
            .args(["-U", SUPERUSER, "--auth=trust", "--encoding=UTF8"])
            .args(["--locale=C", "--no-sync", "--no-instructions"])
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("run {}", bin.join("initdb").display()))?;
        if !out.status.success() {
            bail!(
                "initdb failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }

        let port = free_port()?;
        let log_path = dir.join("postgres.log");
        let log =
            File::create(&log_path).with_context(|| format!("create {}", log_path.display()))?;
        let mut cmd = command(&bin.join("postgres"), run_as, &data);
        cmd.arg("-D").arg(&data).arg("-p").arg(port.to_string());
        for (name, value) in SETTINGS {
            cmd.arg("-c").arg(format!("{name}={value}"));
        }
        sys::interrupt_with_parent(&mut cmd);
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("start {}", bin.join("postgres").display()))?;
        let mut server = Self {
            child,
            port,
            log_path,
            user: if run_as.is_some() {
                UNPRIVILEGED_USER.to_owned()
            } else {
                "the current user".to_owned()
            },
        };
        server.wait_ready()?;
        Ok(server)
    }

    /// A new connection as the superuser, to database `postgres`.
    pub fn connect(&self) -> anyhow::Result<postgres::Client> {
        postgres::Config::new()
            .host("127.0.0.1")
            .port(self.port)
            .user(SUPERUSER)
            .dbname("postgres")
            .connect_timeout(Duration::from_secs(10))
            .connect(postgres::NoTls)
            .with_context(|| format!("connect to PostgreSQL on 127.0.0.1:{}", self.port))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's connection string, for code that connects by URL
    /// (`postgres://weir@127.0.0.1:PORT/postgres`).
    pub fn url(&self) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server (fast shutdown: clients are disconnected, a
    /// shutdown checkpoint is written) and waits for it.
    pub fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown()
    }

    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("postgres exited ({status}): {}", self.log_tail());
            }
            let probe = postgres::Config::new()
                .host("127.0.0.1")
                .port(self.port)
                .user(SUPERUSER)
                .dbname("postgres")
                .connect_timeout(Duration::from_secs(1))
                .connect(postgres::NoTls);
            if probe.is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "postgres did not accept connections on 127.0.0.1:{} within {START_TIMEOUT:?}: {}",
                    self.port,
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn shutdown(&mut self) -> anyhow::Result<()> {
        if self.child.try_wait()?.is_some() {
            return Ok(());
        }
        sys::interrupt(self.child.id()).context("signal postgres to stop")?;
        let deadline = Instant::now() + STOP_TIMEOUT;
        while self.child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                self.child.kill()?;
                self.child.wait()?;
                bail!("postgres did not stop within {STOP_TIMEOUT:?}; killed it");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// The end of the server's log, for error messages.
    fn log_tail(&self) -> String {
        let log = std::fs::read(&self.log_path).unwrap_or_default();
        let tail = &log[log.len().saturating_sub(LOG_TAIL_BYTES)..];
        format!(
            "{} ends with:\n{}",
            self.log_path.display(),
            String::from_utf8_lossy(tail)
        )
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            eprintln!("[weir-testpg] stopping postgres: {e:#}");
        }
    }
}

/// A command for a PostgreSQL program: a clean environment (the C locale,
/// whatever the caller's), run in `cwd`, as `run_as` if given.
fn command(program: &Path, run_as: Option<RunAs>, cwd: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("LC_ALL", "C")
        .current_dir(cwd);
    if let Some(user) = run_as {
        // The standard library also clears the supplementary groups
        // before setuid when it is root, so no group of ours leaks.
        cmd.uid(user.uid).gid(user.gid);
    }
    cmd
}

/// Where `initdb` and `postgres` are: `$WEIR_PG_BIN`, else Debian's
/// `/usr/lib/postgresql/<major>/bin` (the newest major), else the
/// directory on `PATH` that holds `initdb`.
fn bin_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("WEIR_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let debian = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((major, bin))
        })
        .max_by_key(|(major, _)| *major);
    if let Some((_, bin)) = debian {
        return Ok(bin);
    }
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .find(|dir| dir.join("initdb").is_file() && dir.join("postgres").is_file())
        .context(
            "PostgreSQL's initdb and postgres were not found (scripts/install-deps installs \
             Debian's postgresql; WEIR_PG_BIN names another bin directory)",
        )
}

/// `nobody`'s ids when this process is root (PostgreSQL will not run as
/// root); `None` otherwise: the cluster then runs as the current user.
fn unprivileged_user() -> anyhow::Result<Option<RunAs>> {
    if sys::euid() != 0 {
        return Ok(None);
    }
    let out = Command::new("getent")
        .args(["passwd", UNPRIVILEGED_USER])
        .output()
        .context("run getent passwd")?;
    let line = String::from_utf8_lossy(&out.stdout);
    // name:password:uid:gid:gecos:home:shell
    let fields: Vec<&str> = line.trim_end().split(':').collect();
    match (
        out.status.success(),
        fields.get(2).and_then(|f| f.parse().ok()),
        fields.get(3).and_then(|f| f.parse().ok()),
    ) {
        (true, Some(uid), Some(gid)) if uid != 0 => Ok(Some(RunAs { uid, gid })),
        _ => bail!(
            "running as root, and no unprivileged user {UNPRIVILEGED_USER:?} to run PostgreSQL as \
             (getent passwd {UNPRIVILEGED_USER} printed {line:?})"
        ),
    }
}

/// Fails with a clear message when `user` cannot pass through one of
/// `path`'s parent directories (PostgreSQL would fail later, less
/// clearly).
fn check_reachable(path: &Path, user: RunAs) -> anyhow::Result<()> {
    for dir in path.ancestors().skip(1) {
        let meta = std::fs::metadata(dir).with_context(|| format!("stat {}", dir.display()))?;
        let mode = meta.mode();
        let search = if meta.uid() == user.uid {
            mode & 0o100 != 0
        } else if meta.gid() == user.gid {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        };
        if !search {
            bail!(
                "{UNPRIVILEGED_USER} (PostgreSQL runs as it, since this process is root) cannot \
                 enter {} (mode {:o}); give --dir a directory whose parents it may enter, such as /tmp",
                dir.display(),
                mode & 0o7777
            );
        }
    }
    Ok(())
}

/// A free loopback port (bound, read, released).
fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The Linux calls the server's lifecycle needs.
mod sys {
    use std::io;

    /// The effective user id.
    #[allow(
        unsafe_code,
        reason = "geteuid has no std wrapper; see the SAFETY note"
    )]
    pub fn euid() -> u32 {
        // SAFETY: geteuid takes no arguments, touches no memory of ours and
        // cannot fail.
        unsafe { libc::geteuid() }
    }

    /// Sends SIGINT to process `pid` (a child this process started and has
    /// not yet waited for, so the id is still its own).
    #[allow(unsafe_code, reason = "kill has no std wrapper; see the SAFETY note")]
    pub fn interrupt(pid: u32) -> io::Result<()> {
        let pid =
            libc::pid_t::try_from(pid).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        assert!(pid > 0, "a child's process id is positive, not {pid}");
        // SAFETY: kill takes no pointers; `pid` is positive (from a `Child`), so
        // it names one process, never a process group.
        let rc = unsafe { libc::kill(pid, libc::SIGINT) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Has the child `cmd` starts get SIGINT when the thread that spawns it
    /// ends, however it ends (even by SIGKILL of the process), so a server
    /// a benchmark or a test started never outlives it.
    #[allow(
        unsafe_code,
        reason = "pre_exec and prctl have no safe form; see the SAFETY note"
    )]
    pub fn interrupt_with_parent(cmd: &mut std::process::Command) {
        use std::os::unix::process::CommandExt as _;
        // SAFETY: the closure runs in the forked child before exec (after the
        // child's setuid, which would otherwise clear the setting); it only
        // calls prctl, which is async-signal-safe, allocates nothing and takes
        // no locks.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGINT) == 0 {
                    Ok(())
                } else {
                    Err(io::Error::last_os_error())
                }
            });
        }
    }
}
