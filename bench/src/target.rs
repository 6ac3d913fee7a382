//! The servers under test: started pinned to one CPU with one worker thread,
//! and measured from outside through /proc (CPU time, resident memory).

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// The bridge's per-client limits are for people, not load generators: the
/// harness lifts them so every target is measured on delivery alone.
const UNLIMITED: [(&str, &str); 6] = [
    ("MENO_MESSAGES_PER_SECOND", "1000000000"),
    ("MENO_MESSAGE_BURST", "1000000000"),
    ("MENO_MAX_CONNECTIONS_PER_IP", "1000000"),
    ("MENO_CONNECTS_PER_SECOND_PER_IP", "0"),
    ("MENO_MAX_CONNECTIONS_PER_PARTICIPANT", "1000000"),
    ("MENO_MAX_CONNECTIONS", "1000000"),
];

/// Which server a run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TargetKind {
    /// `meno-bridge --store memory`: core in process.
    Meno,
    /// `meno-core --store memory` + `meno-bridge --core`.
    MenoSplit,
    /// `meno-bridge --store embedded` (durable, group commit) on its default
    /// engine for a new data directory.
    MenoEmbedded,
    /// `meno-bridge --store embedded --embedded-engine redb`.
    MenoRedb,
    /// `meno-bridge --store embedded --embedded-engine fjall`.
    MenoFjall,
    /// `--cores N` replicas of `meno-core --store scylla --peers ...` on a
    /// fresh keyspace of the CQL server at `--cql-nodes`, and bridges that
    /// route each session to its owner (issue 17's scale-out).
    MenoScylla,
    /// The real Centrifugo v6.9.1 (`scripts/install-centrifugo`): memory
    /// engine, a generated config checked with `centrifugo checkconfig --strict`.
    Centrifugo,
    /// Centrifugo's engine (centrifuge v0.40.1) with Centrifugo's settings: the
    /// stand-in of earlier rounds.
    CentrifugeEngine,
    /// A bare tokio-tungstenite broadcast server: the ceiling.
    Baseline,
}

impl TargetKind {
    /// The name used in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            TargetKind::Meno => "meno",
            TargetKind::MenoSplit => "meno-split",
            TargetKind::MenoEmbedded => "meno-embedded",
            TargetKind::MenoRedb => "meno-redb",
            TargetKind::MenoFjall => "meno-fjall",
            TargetKind::MenoScylla => "meno-scylla",
            TargetKind::Centrifugo => "centrifugo",
            TargetKind::CentrifugeEngine => "centrifuge-engine",
            TargetKind::Baseline => "baseline",
        }
    }

    /// Whether it speaks Centrifugo's protocol (the real one or its engine).
    pub fn is_centrifugo(self) -> bool {
        matches!(self, TargetKind::Centrifugo | TargetKind::CentrifugeEngine)
    }

    /// Whether clients speak seed 000 to it.
    pub fn is_meno(self) -> bool {
        matches!(
            self,
            TargetKind::Meno
                | TargetKind::MenoSplit
                | TargetKind::MenoEmbedded
                | TargetKind::MenoRedb
                | TargetKind::MenoFjall
                | TargetKind::MenoScylla
        )
    }
}

/// How the target's processes are started.
#[derive(Debug, Clone)]
pub struct Launch {
    /// CPU the target is pinned to.
    pub cpu: usize,
    /// Worker threads (tokio) / GOMAXPROCS.
    pub workers: usize,
    /// Directory holding meno-bridge, meno-core, meno-load, centrifuge-server.
    pub bin_dir: PathBuf,
    /// Bridge processes (idle at scale: one process holds < 20,000 fds).
    pub processes: usize,
    /// Scratch directory (embedded store).
    pub scratch: PathBuf,
    /// Keep the bridge's default per-connection limits (the flood scenario):
    /// only the per-IP limits (the connection cap, the connect rate) are
    /// lifted, since every load client shares one address.
    pub default_limits: bool,
    /// Core replicas of `meno-scylla`.
    pub cores: usize,
    /// The CQL server of `meno-scylla` (host:port, comma separated).
    pub cql_nodes: String,
}

/// The limit settings a meno bridge is started with.
fn limit_env(launch: &Launch) -> Vec<(&'static str, &'static str)> {
    if launch.default_limits {
        UNLIMITED
            .iter()
            .copied()
            .filter(|(name, _)| {
                matches!(
                    *name,
                    "MENO_MAX_CONNECTIONS_PER_IP" | "MENO_CONNECTS_PER_SECOND_PER_IP"
                )
            })
            .collect()
    } else {
        UNLIMITED.to_vec()
    }
}

/// A running target.
#[derive(Debug)]
pub struct Target {
    /// What it is.
    pub kind: TargetKind,
    children: Vec<Child>,
    /// WebSocket (and HTTP API) addresses, one per edge process.
    pub edges: Vec<SocketAddr>,
    /// The core's gRPC address (split mode).
    pub grpc: Option<SocketAddr>,
    edge_pids: Vec<u32>,
}

/// A free loopback port (bound, read, released).
pub fn free_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr")
}

fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100.0)
}

/// utime + stime of `pid`, in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    let (user, system) = cpu_split(pid);
    user + system
}

/// (utime, stime) of `pid`, in seconds: user space and the kernel on its
/// behalf (on loopback that includes much of the receiver's TCP work).
pub fn cpu_split(pid: u32) -> (f64, f64) {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return (0.0, 0.0);
    };
    // Fields after the command name, which may hold spaces: ") S ppid ...".
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let seconds = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            / clock_ticks_per_second_cached()
    };
    (seconds(11), seconds(12))
}

fn clock_ticks_per_second_cached() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(clock_ticks_per_second)
}

/// VmRSS of `pid`, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmRSS:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kib| kib.parse().ok())
        })
        .unwrap_or(0)
}

fn pinned(launch: &Launch, program: &Path) -> Command {
    let mut command = Command::new("taskset");
    command.arg("-c").arg(launch.cpu.to_string());
    // For profiling: e.g. MENO_LOAD_WRAP="valgrind --tool=callgrind".
    if let Ok(wrapper) = std::env::var("MENO_LOAD_WRAP") {
        command.args(wrapper.split_whitespace());
    }
    command
        .arg(program)
        .env("TOKIO_WORKER_THREADS", launch.workers.to_string())
        .env("GOMAXPROCS", launch.workers.to_string())
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    command
}

/// The pinned Centrifugo the install script puts in the cache.
const CENTRIFUGO_VERSION: &str = "v6.9.1";

/// `centrifugo` from the bin dir, else where `scripts/install-centrifugo`
/// puts it, else `PATH`; refused unless it was built from v6.9.1.
fn centrifugo_binary(launch: &Launch) -> anyhow::Result<PathBuf> {
    let cached = std::env::var_os("HOME")
        .map(|home| PathBuf::from(home).join(".cache/meno-realtime/go-bin/centrifugo"));
    let path = [Some(launch.bin_dir.join("centrifugo")), cached]
        .into_iter()
        .flatten()
        .find(|path| path.exists())
        .unwrap_or_else(|| PathBuf::from("centrifugo"));
    // `go install` builds carry no version ldflags: read the module's.
    let info = Command::new("go")
        .arg("version")
        .arg("-m")
        .arg(&path)
        .output()
        .with_context(|| format!("reading the build info of {}", path.display()))?;
    let info = String::from_utf8_lossy(&info.stdout);
    let module = info
        .lines()
        .find(|line| {
            line.trim_start().starts_with("mod\t") || line.trim_start().starts_with("mod ")
        })
        .unwrap_or_default();
    if !module.contains("github.com/centrifugal/centrifugo/v6")
        || !module.contains(CENTRIFUGO_VERSION)
    {
        bail!(
            "{} is not Centrifugo {CENTRIFUGO_VERSION} (build info: {module:?}): run scripts/install-centrifugo",
            path.display()
        );
    }
    Ok(path)
}

/// Writes the config of one Centrifugo process and checks it strictly: the
/// memory engine, anonymous connect and subscribe in namespace `chat`,
/// history 100 / 300 s, the HTTP API key, health on, errors-only logs.
fn centrifugo_config(launch: &Launch, addr: SocketAddr, process: usize) -> anyhow::Result<PathBuf> {
    let mut config = serde_json::json!({
        "log": {"level": "error"},
        "http_server": {"address": addr.ip().to_string(), "port": addr.port().to_string()},
        "client": {
            "allowed_origins": ["*"],
            "allow_anonymous_connect_without_token": true
        },
        "channel": {
            "namespaces": [{
                "name": "chat",
                "allow_subscribe_for_client": true,
                "allow_subscribe_for_anonymous": true,
                "allow_publish_for_client": true,
                "allow_publish_for_anonymous": true,
                "history_size": 100,
                "history_ttl": "300s"
            }]
        },
        "http_api": {"key": crate::load::API_KEY},
        "health": {"enabled": true}
    });
    if std::env::var("MENO_LOAD_CENTRIFUGO_PRESENCE").as_deref() == Ok("1") {
        // For a like-for-like join storm: presence kept, and join/leave
        // pushed to every subscriber, as meno's presence events are.
        let namespace = &mut config["channel"]["namespaces"][0];
        namespace["presence"] = serde_json::json!(true);
        namespace["join_leave"] = serde_json::json!(true);
        namespace["force_push_join_leave"] = serde_json::json!(true);
    }
    std::fs::create_dir_all(&launch.scratch)?;
    let path = launch.scratch.join(format!("centrifugo-{process}.json"));
    std::fs::write(&path, serde_json::to_vec_pretty(&config)?)?;
    let checked = Command::new(centrifugo_binary(launch)?)
        .arg("checkconfig")
        .arg("--strict")
        .arg("--config")
        .arg(&path)
        .output()
        .context("running centrifugo checkconfig")?;
    if !checked.status.success() {
        bail!(
            "centrifugo checkconfig --strict refused {}: {}{}",
            path.display(),
            String::from_utf8_lossy(&checked.stdout),
            String::from_utf8_lossy(&checked.stderr)
        );
    }
    Ok(path)
}

fn binary(launch: &Launch, name: &str) -> anyhow::Result<PathBuf> {
    let path = launch.bin_dir.join(name);
    if path.exists() {
        return Ok(path);
    }
    if name == "centrifuge-server" {
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("centrifuge-server");
        eprintln!("building {} with go", path.display());
        let status = Command::new("go")
            .arg("build")
            .arg("-o")
            .arg(&path)
            .arg(".")
            .current_dir(&source)
            .status()
            .context("running go build (is Go installed?)")?;
        if status.success() {
            return Ok(path);
        }
    }
    bail!(
        "{} not found: build it first (see BENCHMARKS.md)",
        path.display()
    )
}

impl Target {
    /// Starts `kind` and waits until every process answers.
    pub fn start(kind: TargetKind, launch: &Launch) -> anyhow::Result<Self> {
        let mut target = Target {
            kind,
            children: Vec::new(),
            edges: Vec::new(),
            grpc: None,
            edge_pids: Vec::new(),
        };
        let processes = launch.processes.max(1);
        match kind {
            TargetKind::Meno
            | TargetKind::MenoEmbedded
            | TargetKind::MenoRedb
            | TargetKind::MenoFjall => {
                for i in 0..processes {
                    let addr = free_addr();
                    let mut command = pinned(launch, &binary(launch, "meno-bridge")?);
                    command.envs(limit_env(launch));
                    command.arg("--listen").arg(addr.to_string());
                    if kind == TargetKind::Meno {
                        command.arg("--store").arg("memory");
                    } else {
                        let dir = launch.scratch.join(format!("meno-data-{i}"));
                        let _ = std::fs::remove_dir_all(&dir);
                        command
                            .arg("--store")
                            .arg("embedded")
                            .arg("--data-dir")
                            .arg(dir);
                        match kind {
                            TargetKind::MenoRedb => command.args(["--embedded-engine", "redb"]),
                            TargetKind::MenoFjall => command.args(["--embedded-engine", "fjall"]),
                            _ => &mut command,
                        };
                    }
                    target.spawn_edge(command, addr)?;
                }
            }
            TargetKind::MenoSplit => {
                let grpc = free_addr();
                let mut core = pinned(launch, &binary(launch, "meno-core")?);
                core.arg("--listen")
                    .arg(grpc.to_string())
                    .arg("--store")
                    .arg("memory");
                target
                    .children
                    .push(core.spawn().context("starting meno-core")?);
                target.grpc = Some(grpc);
                wait_port(grpc)?;
                target.spawn_bridges(launch, &format!("http://{grpc}"))?;
            }
            TargetKind::MenoScylla => target.start_cluster(launch)?,
            TargetKind::Centrifugo => {
                let program = centrifugo_binary(launch)?;
                for process in 0..processes {
                    let addr = free_addr();
                    let config = centrifugo_config(launch, addr, process)?;
                    let mut command = pinned(launch, &program);
                    command.arg("--config").arg(&config);
                    target.spawn_edge(command, addr)?;
                }
            }
            TargetKind::CentrifugeEngine => {
                for _ in 0..processes {
                    let addr = free_addr();
                    let mut command = pinned(launch, &binary(launch, "centrifuge-server")?);
                    command
                        .arg("--listen")
                        .arg(addr.to_string())
                        .arg("--api-key")
                        .arg(crate::load::API_KEY)
                        .arg("--namespace")
                        .arg("chat")
                        .arg("--history-size")
                        .arg("100")
                        .arg("--history-ttl")
                        .arg("300s");
                    target.spawn_edge(command, addr)?;
                }
            }
            TargetKind::Baseline => {
                for _ in 0..processes {
                    let addr = free_addr();
                    let mut command = pinned(launch, &std::env::current_exe()?);
                    command
                        .arg("baseline-server")
                        .arg("--listen")
                        .arg(addr.to_string());
                    target.spawn_edge(command, addr)?;
                }
            }
        }
        for addr in target.edges.clone() {
            wait_ready(kind, addr)?;
        }
        Ok(target)
    }

    /// `meno-scylla`: a fresh keyspace, `launch.cores` core replicas that
    /// name each other as peers, and bridges that know every core. Every
    /// process is pinned to the target CPU, so they share it: the run shows
    /// how the sessions and their CPU spread over the replicas and what
    /// ownership costs, not more CPU (this machine has two).
    fn start_cluster(&mut self, launch: &Launch) -> anyhow::Result<()> {
        let core_binary = binary(launch, "meno-core")?;
        let keyspace = format!(
            "meno_bench_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_secs()
        );
        let cql = [
            "--scylla-nodes",
            launch.cql_nodes.as_str(),
            "--scylla-keyspace",
            keyspace.as_str(),
        ];
        let migrated = Command::new(&core_binary)
            .arg("migrate")
            .args(cql)
            .arg("--create-keyspace")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .status()
            .context("running meno-core migrate")?;
        if !migrated.success() {
            bail!(
                "meno-core migrate on {} failed: {migrated}",
                launch.cql_nodes
            );
        }
        let cores: Vec<SocketAddr> = (0..launch.cores.max(1)).map(|_| free_addr()).collect();
        let urls: Vec<String> = cores.iter().map(|addr| format!("http://{addr}")).collect();
        let peers = urls.join(",");
        for (index, addr) in cores.iter().enumerate() {
            let mut core = pinned(launch, &core_binary);
            core.arg("--listen")
                .arg(addr.to_string())
                .arg("--store")
                .arg("scylla")
                .args(cql)
                .arg("--peers")
                .arg(&peers)
                .arg("--replica-id")
                .arg(format!("bench-core-{index}"))
                .arg("--advertise-url")
                .arg(&urls[index]);
            self.children
                .push(core.spawn().context("starting meno-core")?);
        }
        for addr in &cores {
            wait_port(*addr)?;
        }
        self.grpc = cores.first().copied();
        self.spawn_bridges(launch, &peers)
    }

    /// `launch.processes` bridges in split mode, each given `core` (one URL
    /// or a comma-separated list of replicas).
    fn spawn_bridges(&mut self, launch: &Launch, core: &str) -> anyhow::Result<()> {
        for _ in 0..launch.processes.max(1) {
            let addr = free_addr();
            let mut command = pinned(launch, &binary(launch, "meno-bridge")?);
            command.envs(limit_env(launch));
            command
                .arg("--listen")
                .arg(addr.to_string())
                .arg("--core")
                .arg(core);
            self.spawn_edge(command, addr)?;
        }
        Ok(())
    }

    fn spawn_edge(&mut self, mut command: Command, addr: SocketAddr) -> anyhow::Result<()> {
        let child = command
            .spawn()
            .with_context(|| format!("starting {:?}", command.get_args()))?;
        self.edge_pids.push(child.id());
        self.children.push(child);
        self.edges.push(addr);
        Ok(())
    }

    /// Every process of the target.
    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }

    /// CPU seconds of each process so far, in start order (split and
    /// scylla meno: the cores, then the bridges).
    pub fn cpu_by_process(&self) -> Vec<f64> {
        self.pids().into_iter().map(cpu_seconds).collect()
    }

    /// CPU seconds of each process since `before` (from `cpu_by_process`).
    pub fn cpu_by_process_since(&self, before: &[f64]) -> Vec<f64> {
        self.cpu_by_process()
            .into_iter()
            .zip(before)
            .map(|(now, before)| now - before)
            .collect()
    }

    /// CPU seconds used so far by all its processes.
    pub fn cpu_seconds(&self) -> f64 {
        self.pids().into_iter().map(cpu_seconds).sum()
    }

    /// (user, system) CPU seconds used so far by all its processes.
    pub fn cpu_split(&self) -> (f64, f64) {
        self.pids()
            .into_iter()
            .map(cpu_split)
            .fold((0.0, 0.0), |(u, s), (pu, ps)| (u + pu, s + ps))
    }

    /// RSS of the edge processes (the bridges), KiB.
    pub fn edge_rss_kib(&self) -> u64 {
        self.edge_pids.iter().map(|&pid| rss_kib(pid)).sum()
    }

    /// RSS of every process, KiB.
    pub fn total_rss_kib(&self) -> u64 {
        self.pids().into_iter().map(rss_kib).sum()
    }

    /// Whether every process still runs.
    pub fn alive(&mut self) -> bool {
        self.children
            .iter_mut()
            .all(|child| matches!(child.try_wait(), Ok(None)))
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        // A profiled target writes its profile on a clean exit: ask first.
        if std::env::var_os("MENO_LOAD_WRAP").is_some() {
            for child in self.children.iter_mut().rev() {
                let _ = Command::new("kill")
                    .arg("-TERM")
                    .arg(child.id().to_string())
                    .status();
                let deadline = Instant::now() + Duration::from_secs(60);
                while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
        // Edges first, so they do not log the core going away.
        for child in self.children.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn wait_port(addr: SocketAddr) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(addr).is_err() {
        if Instant::now() > deadline {
            bail!("{addr} did not open in 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

fn wait_ready(kind: TargetKind, addr: SocketAddr) -> anyhow::Result<()> {
    use std::io::{Read, Write};
    let path = match kind {
        TargetKind::Centrifugo | TargetKind::CentrifugeEngine => "/health",
        TargetKind::Baseline => "/",
        _ => "/readyz",
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(mut stream) = std::net::TcpStream::connect(addr) {
            let request =
                format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            if stream.write_all(request.as_bytes()).is_ok() {
                let mut response = String::new();
                let _ = stream.read_to_string(&mut response);
                if response.starts_with("HTTP/1.1 200") || kind == TargetKind::Baseline {
                    return Ok(());
                }
            }
        }
        if Instant::now() > deadline {
            bail!("{} at {addr} not ready in 30 s", kind.name());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
