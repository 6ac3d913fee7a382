//! Real `meno-bridge` / `meno-core` processes, for restart and crash tests.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running binary, killed when dropped.
#[derive(Debug)]
pub struct Process {
    child: Child,
    pub addr: SocketAddr,
}

/// Ports [`free_addr`] hands out: below the kernel's ephemeral range
/// (32768–60999 here), so no outgoing connection holds one as its source
/// port, and a port that one test released (a core it kills and restarts on
/// the same address) is never handed to another test meanwhile, as the
/// kernel's `bind(:0)` would.
const TEST_PORTS: std::ops::Range<u32> = 20_000..32_000;

/// A free loopback port, never the same one twice in this process: checked
/// free by binding it, then released for the process under test to bind.
/// Test binaries running at once start at offsets of their pids.
pub fn free_addr() -> SocketAddr {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let span = TEST_PORTS.end - TEST_PORTS.start;
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(997) % span,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    for _ in 0..span {
        let port = TEST_PORTS.start + NEXT.fetch_add(1, Ordering::Relaxed) % span;
        let port = u16::try_from(port).expect("test ports fit in u16");
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
            return listener.local_addr().expect("addr");
        }
    }
    panic!("no free loopback port in {TEST_PORTS:?}");
}

impl Process {
    /// Starts `meno-bridge` in monolithic mode on `addr` with `data_dir`.
    pub async fn monolithic(addr: SocketAddr, data_dir: &Path) -> Self {
        Self::monolithic_with(addr, data_dir, &[]).await
    }

    /// Like [`Process::monolithic`], with extra flags.
    pub async fn monolithic_with(addr: SocketAddr, data_dir: &Path, extra: &[&str]) -> Self {
        let binary = crate::workspace_binary("meno-bridge");
        let child = Command::new(binary)
            .args(extra)
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--data-dir")
            .arg(data_dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn meno-bridge");
        let mut process = Self { child, addr };
        process.wait_ready().await;
        process.assert_running();
        process
    }

    /// Starts `meno-bridge` on `addr` in front of the core at `core_addr`
    /// (split mode), with extra environment variables, and waits until it
    /// is ready.
    pub async fn bridge_with_env(
        addr: SocketAddr,
        core_addr: SocketAddr,
        env: &[(&str, String)],
    ) -> Self {
        let args = vec![
            "--listen".to_owned(),
            addr.to_string(),
            "--core".to_owned(),
            format!("http://{core_addr}"),
        ];
        let mut bridge = Self::spawn_with_env("meno-bridge", addr, &args, env);
        bridge.wait_ready().await;
        bridge.assert_running();
        bridge
    }

    /// Starts `binary` (a workspace binary name) with `args`; the caller
    /// waits for it in whatever way suits the binary.
    pub fn spawn(binary: &str, addr: SocketAddr, args: &[String]) -> Self {
        Self::spawn_with_env(binary, addr, args, &[])
    }

    /// Like [`Process::spawn`], with extra environment variables.
    pub fn spawn_with_env(
        binary: &str,
        addr: SocketAddr,
        args: &[String],
        env: &[(&str, String)],
    ) -> Self {
        let path = crate::workspace_binary(binary);
        let child = Command::new(path)
            .args(args)
            .envs(env.iter().map(|(name, value)| (name, value)))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|err| panic!("spawn {binary}: {err}"));
        Self { child, addr }
    }

    /// Starts `meno-core` listening on `addr` with `args` (besides
    /// `--listen`) and waits until it accepts connections.
    pub async fn core(addr: SocketAddr, args: &[&str]) -> Self {
        Self::core_with_env(addr, args, &[]).await
    }

    /// Like [`Process::core`], with extra environment variables.
    pub async fn core_with_env(addr: SocketAddr, args: &[&str], env: &[(&str, String)]) -> Self {
        let mut all = vec!["--listen".to_owned(), addr.to_string()];
        all.extend(args.iter().map(|arg| (*arg).to_owned()));
        let mut core = Self::spawn_with_env("meno-core", addr, &all, env);
        let deadline = tokio::time::Instant::now() + crate::WAIT;
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            core.assert_running();
            assert!(
                tokio::time::Instant::now() < deadline,
                "meno-core did not listen on {addr}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        core.assert_running();
        core
    }

    /// Panics when the process has exited: whatever answers on its address
    /// then is another process, which a test must never talk to unknowingly.
    fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("the process for {} exited: {status}", self.addr);
        }
    }

    /// Starts a `meno-bridge` in front of the core at `core` and waits until
    /// it is ready.
    pub async fn bridge(addr: SocketAddr, core: SocketAddr, extra: &[&str]) -> Self {
        Self::bridge_to(addr, &format!("http://{core}"), extra).await
    }

    /// Like [`Process::bridge`], with `--core` as given (a list of core
    /// replicas' URLs).
    pub async fn bridge_to(addr: SocketAddr, core_urls: &str, extra: &[&str]) -> Self {
        let mut args = vec![
            "--listen".to_owned(),
            addr.to_string(),
            "--core".to_owned(),
            core_urls.to_owned(),
        ];
        args.extend(extra.iter().map(|arg| (*arg).to_owned()));
        let mut bridge = Self::spawn("meno-bridge", addr, &args);
        bridge.wait_ready().await;
        bridge.assert_running();
        bridge
    }

    /// Whether `/readyz` answers 200 now.
    pub async fn is_ready(&self) -> bool {
        ready(self.addr).await
    }

    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&self) {
        self.wait_ready_within(crate::WAIT).await;
    }

    /// Waits until `/readyz` answers 200, at most `wait`.
    pub async fn wait_ready_within(&self, wait: Duration) {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Ok(stream) = tokio::net::TcpStream::connect(self.addr).await {
                drop(stream);
                if ready(self.addr).await {
                    return;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} not ready in time",
                self.addr
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `kill -STOP`: the process freezes with its sockets open.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// `kill -CONT`: a paused process runs on.
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(signal)
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} {}", self.child.id());
    }

    /// `kill -9`: no drain, no flush.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for the exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        self.child.wait().expect("wait")
    }

    /// [`Process::terminate`] without blocking the runtime: clients keep
    /// running while the process drains.
    pub async fn terminate_async(self) -> std::process::ExitStatus {
        tokio::task::spawn_blocking(move || self.terminate())
            .await
            .expect("wait for the exit")
    }
}

async fn ready(addr: SocketAddr) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
        return false;
    };
    let request = format!("GET /readyz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response).await;
    response.starts_with("HTTP/1.1 200")
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
