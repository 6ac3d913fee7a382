//! `meno-load`: drives real WebSocket clients and a publisher against a
//! target (meno, Centrifugo's engine, a bare baseline) pinned to one CPU,
//! from the other CPU, and measures the target from /proc. See BENCHMARKS.md.

/// With the feature `mimalloc`, the load tool and the baseline server it runs
/// use the allocator the meno binaries use.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use serde_json::json;

use meno_load::load::PublishPath;
use meno_load::target::{Launch, Target, TargetKind};
use meno_load::{baseline, flood, idle, report, scenario};

#[derive(Debug, Parser)]
#[command(
    name = "meno-load",
    about = "Load harness: meno vs Centrifugo vs a bare baseline"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ScenarioKind {
    /// 1 room, many subscribers, publish rate swept to saturation.
    Fanout,
    /// Many rooms of a few subscribers (the classroom shape).
    Rooms,
    /// One subscriber stops reading; the others' latency must not suffer.
    Slow,
    /// Idle connections: server RSS per connection.
    Idle,
    /// Closed-loop acknowledged chat.send per second.
    Chat,
    /// Session B's latency, quiet and while one socket in session A floods
    /// the bridge (default limits; meno targets only).
    Flood,
    /// A join storm: many sockets join one room at once; the server CPU it
    /// costs until the room is quiet again, presence traffic included.
    Join,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Runs a scenario against targets.
    Run(RunArgs),
    /// The baseline target (started by `run`).
    BaselineServer {
        #[arg(long)]
        listen: SocketAddr,
    },
    /// Floods the bridge from one socket for the flood scenario (started by `run`).
    FloodWorker {
        #[arg(long)]
        edge: SocketAddr,
        #[arg(long)]
        source: Option<std::net::Ipv4Addr>,
    },
    /// Holds idle connections for the idle scenario (started by `run`).
    IdleWorker {
        #[arg(long, value_enum)]
        kind: TargetKind,
        #[arg(long, value_delimiter = ',')]
        edges: Vec<SocketAddr>,
        #[arg(long)]
        offset: usize,
        #[arg(long)]
        count: usize,
        #[arg(long)]
        room_size: usize,
        #[arg(long)]
        source_index: usize,
        #[arg(long)]
        by_room: bool,
    },
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// The scenario.
    #[arg(long, value_enum)]
    scenario: ScenarioKind,
    /// Targets, run one after another.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "meno,centrifugo,baseline"
    )]
    targets: Vec<TargetKind>,
    /// Publish path for meno targets (grpc needs meno-split); Centrifugo always
    /// uses its HTTP API and baseline its sockets.
    #[arg(long, value_enum, default_value = "ws")]
    publish: PublishPath,
    /// Subscribers (per room for rooms, slow; total for idle).
    #[arg(long)]
    subscribers: Option<usize>,
    /// Rooms (rooms and chat scenarios).
    #[arg(long)]
    rooms: Option<usize>,
    /// Publish rates in messages per second (comma separated).
    #[arg(long, value_delimiter = ',')]
    rates: Option<Vec<f64>>,
    /// Length of each rate step.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    step: Duration,
    /// Keep going after a saturated step.
    #[arg(long)]
    no_stop: bool,
    /// Server processes per target (idle beyond one process's 20,000 files).
    #[arg(long, default_value_t = 1)]
    processes: usize,
    /// CPU of the target.
    #[arg(long, default_value_t = 0)]
    target_cpu: usize,
    /// CPU of the load tool.
    #[arg(long, default_value_t = 1)]
    load_cpu: usize,
    /// Worker threads of the target (TOKIO_WORKER_THREADS / GOMAXPROCS).
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Directory of the target binaries (default: beside meno-load).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Core replicas of the meno-scylla target (comma separated: one run
    /// per count, e.g. 1,2,3).
    #[arg(long, value_delimiter = ',', default_value = "1")]
    cores: Vec<usize>,
    /// The CQL server of the meno-scylla target.
    #[arg(long, env = "MENO_CQL_NODES", default_value = "127.0.0.1:9042")]
    cql_nodes: String,
    /// Write the results here as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Idle scenario with several server processes: all of a room's
    /// connections go to one process (as a load balancer with session
    /// affinity would place them), instead of round robin per connection.
    #[arg(long)]
    by_room: bool,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::BaselineServer { listen } => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(baseline::serve(listen)),
        Cmd::IdleWorker {
            kind,
            edges,
            offset,
            count,
            room_size,
            source_index,
            by_room,
        } => current_thread()?.block_on(idle::worker(
            kind,
            edges,
            offset,
            count,
            room_size,
            source_index,
            by_room,
        )),
        Cmd::FloodWorker { edge, source } => {
            current_thread()?.block_on(flood::worker(edge, source))
        }
        Cmd::Run(args) => run(args),
    }
}

fn current_thread() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

fn run(args: RunArgs) -> anyhow::Result<()> {
    // Pin the load tool before its runtime starts, so every thread inherits it.
    let pinned = Command::new("taskset")
        .arg("-p")
        .arg("-c")
        .arg(args.load_cpu.to_string())
        .arg(std::process::id().to_string())
        .stdout(std::process::Stdio::null())
        .status();
    if !matches!(pinned, Ok(status) if status.success()) {
        eprintln!(
            "warning: could not pin the load tool to CPU {}",
            args.load_cpu
        );
    }
    let bin_dir = match &args.bin_dir {
        Some(dir) => dir.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("binary directory")?
            .to_path_buf(),
    };
    let scratch = std::env::temp_dir().join(format!("meno-load-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    let launch = Launch {
        cpu: args.target_cpu,
        workers: args.workers,
        bin_dir,
        processes: args.processes,
        scratch: scratch.clone(),
        default_limits: args.scenario == ScenarioKind::Flood,
        cores: 1,
        cql_nodes: args.cql_nodes.clone(),
    };
    let runtime = current_thread()?;
    let mut results = Vec::new();
    if matches!(
        args.scenario,
        ScenarioKind::Fanout | ScenarioKind::Rooms | ScenarioKind::Slow
    ) {
        report::print_step_header();
    }
    // meno-scylla runs once per core count.
    let runs = args.targets.iter().flat_map(|&kind| {
        let counts = if kind == TargetKind::MenoScylla {
            args.cores.clone()
        } else {
            vec![1]
        };
        counts.into_iter().map(move |cores| (kind, cores))
    });
    for (kind, cores) in runs {
        if args.scenario == ScenarioKind::Flood && !kind.is_meno() {
            eprintln!("flood: skipping {} (meno targets only)", kind.name());
            continue;
        }
        let launch = Launch {
            cores,
            ..launch.clone()
        };
        let mut target = Target::start(kind, &launch)
            .with_context(|| format!("starting target {}", kind.name()))?;
        let path = match kind {
            TargetKind::Centrifugo | TargetKind::CentrifugeEngine => PublishPath::Http,
            TargetKind::Baseline => PublishPath::Ws,
            // Only the split target has a core gRPC port; the flood scenario
            // runs on both, so the monolith publishes through sockets.
            _ if args.scenario == ScenarioKind::Flood
                && args.publish == PublishPath::Grpc
                && target.grpc.is_none() =>
            {
                PublishPath::Ws
            }
            _ => args.publish,
        };
        let name = match kind {
            TargetKind::MenoScylla => format!("{}-{cores}core", kind.name()),
            _ => kind.name().to_owned(),
        };
        let label = match (kind.is_meno(), path) {
            (true, PublishPath::Grpc) => format!("{name}/grpc"),
            (true, _) => format!("{name}/ws"),
            _ => name,
        };
        eprintln!("== {label}: {:?}", args.scenario);
        let outcome = runtime.block_on(run_one(&args, &target, path));
        let alive = target.alive();
        match outcome {
            Ok(record) => {
                if args.scenario == ScenarioKind::Flood {
                    report::print_flood(&label, &record);
                }
                results.push(json!({
                "target": label,
                "alive_after": alive,
                "result": record,
                }));
            }
            Err(err) => {
                eprintln!("{label}: {err:#}");
                results.push(json!({"target": label, "error": format!("{err:#}")}));
            }
        }
        drop(target);
        // Sockets in TIME_WAIT hold their source ports for a while.
        std::thread::sleep(Duration::from_secs(2));
    }
    let _ = std::fs::remove_dir_all(&scratch);
    let document = json!({
        "scenario": format!("{:?}", args.scenario).to_lowercase(),
        "machine": machine(),
        "target_cpu": args.target_cpu,
        "load_cpu": args.load_cpu,
        "workers": args.workers,
        "step_s": args.step.as_secs_f64(),
        "results": results,
    });
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&document)?)?;
        eprintln!("results written to {}", path.display());
    }
    Ok(())
}

async fn run_one(
    args: &RunArgs,
    target: &Target,
    path: PublishPath,
) -> anyhow::Result<serde_json::Value> {
    let sweep =
        |rooms: usize, per_room: usize, rates: Vec<f64>, publishers: usize| scenario::Sweep {
            rooms,
            per_room,
            rates: args.rates.clone().unwrap_or(rates),
            step: args.step,
            path,
            publishers_per_room: publishers,
            sources: 8,
            connect_concurrency: 64,
            stop_at_saturation: !args.no_stop,
        };
    match args.scenario {
        ScenarioKind::Fanout => {
            let subscribers = args.subscribers.unwrap_or(2000);
            let rates = vec![50.0, 100.0, 200.0, 400.0, 800.0, 1600.0, 3200.0];
            scenario::sweep(target, &sweep(1, subscribers, rates, 8)).await
        }
        ScenarioKind::Rooms => {
            let rooms = args.rooms.unwrap_or(1000);
            let per_room = args.subscribers.unwrap_or(10);
            let rates = vec![2000.0, 5000.0, 10000.0, 20000.0, 40000.0];
            scenario::sweep(target, &sweep(rooms, per_room, rates, 1)).await
        }
        ScenarioKind::Slow => {
            let subscribers = args.subscribers.unwrap_or(500);
            scenario::slow(target, &sweep(1, subscribers, vec![500.0], 8)).await
        }
        ScenarioKind::Idle => {
            let connections = args.subscribers.unwrap_or(10_000);
            let settings = idle::Idle {
                connections,
                room_size: 10,
                by_room: args.by_room,
                load_cpu: args.load_cpu,
                settle: Duration::from_secs(5),
            };
            idle::idle(target, &settings)
        }
        ScenarioKind::Chat => {
            let rooms = args.rooms.unwrap_or(100);
            let per_room = args.subscribers.unwrap_or(10);
            let length = args.step.max(Duration::from_secs(5));
            idle::chat(target, rooms, per_room, length).await
        }
        ScenarioKind::Join => {
            let sockets = args.subscribers.unwrap_or(10_000);
            let storm = scenario::Sweep {
                connect_concurrency: 256,
                ..sweep(1, sockets, Vec::new(), 1)
            };
            scenario::join_storm(target, &storm).await
        }
        ScenarioKind::Flood => {
            let settings = flood::Flood {
                subscribers: args.subscribers.unwrap_or(200),
                rate: args
                    .rates
                    .as_ref()
                    .and_then(|r| r.first().copied())
                    .unwrap_or(50.0),
                length: args.step,
                path,
                flood_source: std::net::Ipv4Addr::new(127, 0, 0, 200),
            };
            flood::flood(target, &settings).await
        }
    }
}

fn machine() -> serde_json::Value {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find(|line| line.starts_with("model name"))
        .and_then(|line| line.split(':').nth(1))
        .unwrap_or("")
        .trim()
        .to_owned();
    let kernel = read("/proc/sys/kernel/osrelease").trim().to_owned();
    let load = read("/proc/loadavg").trim().to_owned();
    json!({ "cpu": cpu, "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0), "kernel": kernel, "loadavg_at_end": load })
}
