//! Metrics: after a short session, `/metrics` of the bridge and the core's
//! metrics port show the named series with sensible values.

use meno_tests::process::free_addr;
use meno_tests::{http_get, session_id, Mode, System};
use serde_json::json;

/// The value of the first sample of `series` (name plus optional labels).
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok())?
        })
        .unwrap_or_else(|| panic!("no series {series} in:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_session_shows_in_the_metrics_of_both_binaries() {
    let system = System::start(Mode::Monolithic).await;
    let session = session_id("metrics");
    let mut ann = system.join(&session, "ann", "teacher").await;
    ann.expect_start().await;
    let mut bob = system.join(&session, "bob", "student").await;
    bob.expect_start().await;
    ann.chat("m1", "counted").await;
    ann.expect_where("chat.message", |_| true).await;
    bob.expect("chat.message").await;
    ann.send("control.lease.set", json!({"stepIndex": 1})).await;
    ann.expect("control.lease.state").await;
    bob.expect("control.lease.state").await;
    bob.send("chat.send", json!({"content": "no id"})).await;
    bob.expect("error").await;

    let (status, text) = http_get(system.bridge_addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(sample(&text, "meno_bridge_connections{client=\"web\"}") >= 2.0);
    assert!(sample(&text, "meno_bridge_active_sessions") >= 1.0);
    assert!(sample(&text, "meno_bridge_events_delivered_total") >= 4.0);
    assert!(
        sample(
            &text,
            "meno_bridge_errors_sent_total{code=\"InvalidArgument\"}"
        ) >= 1.0
    );
    assert!(
        sample(
            &text,
            "meno_bridge_core_call_seconds_count{action=\"chat.send\"}"
        ) >= 1.0
    );
    assert!(sample(&text, "meno_core_events_published_total{kind=\"chat\"}") >= 1.0);
    assert!(sample(&text, "meno_core_lease_grants_total") >= 1.0);
    assert!(sample(&text, "meno_core_store_write_seconds_count") >= 1.0);
    assert!(sample(&text, "meno_core_active_sessions") >= 1.0);
    assert!(sample(&text, "meno_core_command_seconds_count{command=\"join\"}") >= 2.0);

    // The core's own metrics port serves the same registry.
    let addr = free_addr();
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(meno_core::metrics::serve(addr, stop.clone()));
    let mut scraped = None;
    for _ in 0..50 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            scraped = Some(http_get(addr, "/metrics").await);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let (status, core_text) = scraped.expect("metrics port answers");
    assert_eq!(status, 200);
    assert!(
        sample(
            &core_text,
            "meno_core_events_published_total{kind=\"lease\"}"
        ) >= 1.0
    );
    stop.cancel();
}
