//! The backends of `examples/` as real processes: the Rust assistant
//! (`meno-example-assistant`) and the Python voice backend
//! (`examples/python-voice-backend/backend.py`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// The environment variable that makes a missing Python `grpcio` a failure
/// rather than a skip (`scripts/test` sets it after installing grpcio).
pub const REQUIRE_PYTHON_GRPC: &str = "MENO_REQUIRE_PYTHON_GRPC";

/// The repository's root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives in the repository")
        .to_path_buf()
}

/// Whether `python3` can import `grpc` and `grpc_tools`; when it cannot,
/// panics if [`REQUIRE_PYTHON_GRPC`] is set and returns false otherwise.
pub fn python_grpc_available() -> bool {
    let imported = std::process::Command::new("python3")
        .args(["-c", "import grpc, grpc_tools"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !imported && std::env::var_os(REQUIRE_PYTHON_GRPC).is_some() {
        panic!(
            "{REQUIRE_PYTHON_GRPC} is set but python3 cannot import grpc and grpc_tools \
             (pip install grpcio grpcio-tools)"
        );
    }
    imported
}

/// A running example backend: its stdout lines, killed when dropped.
#[derive(Debug)]
pub struct Example {
    name: &'static str,
    child: Child,
    lines: mpsc::UnboundedReceiver<String>,
}

impl Example {
    /// Starts `command` with stdout captured line by line (stderr goes to
    /// the test's output).
    pub fn spawn(name: &'static str, mut command: Command) -> Self {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|err| panic!("spawn {name}: {err}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (sender, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Self { name, child, lines }
    }

    /// The Rust assistant backend, attaching to the core at `core`.
    pub fn assistant(core: SocketAddr, tenant: &str) -> Self {
        let mut command = Command::new(crate::workspace_binary("meno-example-assistant"));
        command
            .arg("--core")
            .arg(format!("http://{core}"))
            .arg("--tenant")
            .arg(tenant)
            .arg("--backend-id")
            .arg("assistant-under-test")
            .arg("--chunk-delay-ms")
            .arg("5");
        Self::spawn("meno-example-assistant", command)
    }

    /// The Python voice backend, attaching to the core at `core`, writing
    /// audio to `out_dir` and its generated gRPC code to `stubs_dir`.
    pub fn python_voice(core: SocketAddr, tenant: &str, out_dir: &Path, stubs_dir: &Path) -> Self {
        let mut command = Command::new("python3");
        command
            .arg(repo_root().join("examples/python-voice-backend/backend.py"))
            .arg("--core")
            .arg(format!("http://{core}"))
            .arg("--tenant")
            .arg(tenant)
            .arg("--out-dir")
            .arg(out_dir)
            .arg("--stubs-dir")
            .arg(stubs_dir)
            .arg("--backend-id")
            .arg("python-voice-under-test")
            .env("PYTHONUNBUFFERED", "1");
        Self::spawn("python voice backend", command)
    }

    /// Waits for a stdout line containing `needle` (at most `wait`) and
    /// returns it; lines before it are skipped.
    pub async fn wait_for_line(&mut self, needle: &str, wait: Duration) -> String {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Err(_) => panic!("{}: no line with {needle:?} within {wait:?}", self.name),
                Ok(None) => panic!(
                    "{}: stdout closed before a line with {needle:?} (exit: {:?})",
                    self.name,
                    self.child.try_wait()
                ),
                Ok(Some(line)) if line.contains(needle) => return line,
                Ok(Some(_)) => {}
            }
        }
    }

    /// Waits until the backend says it attached to the core.
    pub async fn wait_attached(&mut self, wait: Duration) -> String {
        self.wait_for_line("attached to ", wait).await
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM, then its exit status (at most `wait`).
    pub async fn terminate(mut self, wait: Duration) -> ExitStatus {
        let pid = self.child.id().expect("still running");
        let sent = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {pid}");
        tokio::time::timeout(wait, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("{} did not exit within {wait:?} of SIGTERM", self.name))
            .expect("wait for the exit")
    }
}
