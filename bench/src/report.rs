//! Output: one table row per measurement on stdout, everything in JSON.

use serde_json::Value;

fn number(value: &Value, key: &str) -> f64 {
    value.get(key).and_then(Value::as_f64).unwrap_or(f64::NAN)
}

/// Prints the header of sweep rows.
pub fn print_step_header() {
    println!(
        "{:<14} {:>9} {:>9} {:>12} {:>8} {:>9} {:>9} {:>9} {:>9} {:>4}",
        "target",
        "msg/s",
        "pub/s",
        "deliv/s",
        "losses",
        "cpu-s/M",
        "p50 ms",
        "p99 ms",
        "p999 ms",
        "sat"
    );
}

/// One sweep step.
pub fn print_step(target: &str, step: &Value) {
    let latency = &step["latency_us"];
    println!(
        "{:<14} {:>9.0} {:>9.0} {:>12.0} {:>8} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>4}",
        target,
        number(step, "rate_requested"),
        number(step, "rate_published"),
        number(step, "deliveries_per_s"),
        step["losses"],
        number(step, "cpu_s_per_million"),
        number(latency, "p50") / 1000.0,
        number(latency, "p99") / 1000.0,
        number(latency, "p999") / 1000.0,
        if step["saturated"].as_bool() == Some(true) {
            "yes"
        } else {
            "no"
        },
    );
}

/// One idle measurement.
pub fn print_idle(target: &str, record: &Value) {
    println!(
        "{:<14} open {:>6}/{:<6} failed {:>5}  edge {:>7.2} KiB/conn  all processes {:>7.2} KiB/conn  ({} server processes, {} load processes)",
        target,
        record["connections_open"],
        record["connections_requested"],
        record["connections_failed"],
        number(record, "edge_kib_per_connection"),
        number(record, "total_kib_per_connection"),
        record["server_processes"],
        record["load_processes"],
    );
}

/// One closed-loop chat measurement.
pub fn print_chat(target: &str, record: &Value) {
    let latency = &record["ack_latency_us"];
    println!(
        "{:<14} sockets {:>5}  acked chat.send/s {:>9.0}  ack p50 {:>7.2} ms  p99 {:>7.2} ms  failures {}",
        target,
        record["sockets"],
        number(record, "acked_per_s"),
        number(latency, "p50") / 1000.0,
        number(latency, "p99") / 1000.0,
        record["failures"],
    );
}

/// The flood scenario: quiet and flooded runs side by side.
pub fn print_flood(target: &str, record: &Value) {
    println!(
        "{:<16} {:<7} {:>7} {:>9} {:>7} {:>8} {:>8} {:>8} {:>8} {:>6}",
        "target",
        "run",
        "pub/s",
        "deliv/s",
        "losses",
        "p50 ms",
        "p99 ms",
        "p999 ms",
        "max ms",
        "cpu %"
    );
    for run in ["quiet", "flooded"] {
        let step = &record[run];
        let latency = &step["latency_us"];
        println!(
            "{:<16} {:<7} {:>7.1} {:>9.0} {:>7} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>6.1}",
            target,
            run,
            number(step, "rate_published"),
            number(step, "deliveries_per_s"),
            step["losses"].as_u64().unwrap_or(0),
            number(latency, "p50") / 1000.0,
            number(latency, "p99") / 1000.0,
            number(latency, "p999") / 1000.0,
            number(latency, "max") / 1000.0,
            number(step, "target_cpu_pct"),
        );
    }
    let flooder = &record["flooder"];
    println!(
        "{:<16} p99 flooded/quiet = {:.2}; flooder: {} frames written to its socket ({:.0}/s), {} RateLimited errors, {} closes 4029 (+{} ended by reset), {} connects; B subscribers closed: {}",
        target,
        number(record, "p99_ratio"),
        flooder["frames_written"],
        number(flooder, "frames_per_s"),
        flooder["rate_limited_errors"],
        flooder["closes_4029"],
        flooder["ended_without_close"],
        flooder["connects"],
        record["b_subscribers_closed"],
    );
}
