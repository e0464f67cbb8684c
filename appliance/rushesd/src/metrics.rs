//! Prometheus metrics on an HTTP port, for the facility's own monitoring: operations,
//! bytes and errors per protocol and operation and per client, pool capacity and state,
//! alerts, and the audit log's size.

use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::Router;

use crate::daemon::Daemon;

/// Picks one counter out of (operations, bytes, errors).
type Pick = fn(&(u64, u64, u64)) -> u64;

/// A label value with `\`, `"` and line breaks escaped.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn severity_word(s: rushes_api::Severity) -> &'static str {
    match s {
        rushes_api::Severity::Critical => "critical",
        rushes_api::Severity::Warning => "warning",
        rushes_api::Severity::Info => "info",
    }
}

/// The text exposition format (version 0.0.4).
pub fn render(m: &Daemon) -> String {
    let mut out = String::new();
    let totals = m.activity.rollups().totals();
    let mut ops: Vec<_> = totals.ops.into_iter().collect();
    ops.sort();
    let families: [(&str, &str, Pick); 3] = [
        (
            "rushes_operations_total",
            "Operations answered, by protocol and operation.",
            |t| t.0,
        ),
        (
            "rushes_bytes_total",
            "Bytes read and written, by protocol and operation.",
            |t| t.1,
        ),
        (
            "rushes_errors_total",
            "Operations that failed, by protocol and operation.",
            |t| t.2,
        ),
    ];
    for (name, help, value) in families {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for ((protocol, op), t) in &ops {
            let _ = writeln!(
                out,
                "{name}{{protocol=\"{}\",op=\"{}\"}} {}",
                label(protocol),
                label(op),
                value(t)
            );
        }
    }
    let mut clients: Vec<_> = totals.clients.into_iter().collect();
    clients.sort();
    let _ = writeln!(
        out,
        "# HELP rushes_client_operations_total Operations per client address.\n# TYPE rushes_client_operations_total counter"
    );
    for (ip, (n, _)) in &clients {
        let _ = writeln!(
            out,
            "rushes_client_operations_total{{client=\"{}\"}} {n}",
            ip.to_canonical()
        );
    }
    let _ = writeln!(
        out,
        "# HELP rushes_client_bytes_total Bytes read and written per client address.\n# TYPE rushes_client_bytes_total counter"
    );
    for (ip, (_, b)) in &clients {
        let _ = writeln!(
            out,
            "rushes_client_bytes_total{{client=\"{}\"}} {b}",
            ip.to_canonical()
        );
    }
    let pools = m.pools.pools();
    let gauges: [(&str, &str); 3] = [
        ("rushes_pool_size_bytes", "Usable capacity of each pool."),
        ("rushes_pool_used_bytes", "Space used on each pool."),
        (
            "rushes_pool_online",
            "1 when the pool is online with every member, 0 otherwise.",
        ),
    ];
    for (i, (name, help)) in gauges.iter().enumerate() {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for p in &pools {
            let v = match i {
                0 => p.size_bytes,
                1 => p.used_bytes,
                _ => u64::from(p.state == rushes_api::PoolState::Online),
            };
            let _ = writeln!(out, "{name}{{pool=\"{}\"}} {v}", label(&p.name));
        }
    }
    let alerts = m.alerts();
    let _ = writeln!(
        out,
        "# HELP rushes_alerts Alerts open now, by severity.\n# TYPE rushes_alerts gauge"
    );
    for (sev, word) in [
        (rushes_api::Severity::Critical, "critical"),
        (rushes_api::Severity::Warning, "warning"),
        (rushes_api::Severity::Info, "info"),
    ] {
        let n = alerts.iter().filter(|a| a.severity == sev).count();
        let _ = writeln!(out, "rushes_alerts{{severity=\"{word}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "# HELP rushes_alert_raised_seconds Each open alert, by id, source and severity: when it was raised (seconds since the epoch).\n# TYPE rushes_alert_raised_seconds gauge"
    );
    for a in &alerts {
        let _ = writeln!(
            out,
            "rushes_alert_raised_seconds{{id=\"{}\",source=\"{}\",severity=\"{}\"}} {}",
            label(&a.id),
            label(&a.source),
            severity_word(a.severity),
            a.since
        );
    }
    let audit = m.activity.audit().status();
    let _ = writeln!(
        out,
        "# HELP rushes_audit_log_bytes Size of the audit log on its pool.\n# TYPE rushes_audit_log_bytes gauge\nrushes_audit_log_bytes {}",
        audit.bytes
    );
    let _ = writeln!(
        out,
        "# HELP rushes_audit_dropped_total Audit records dropped while no pool was mounted.\n# TYPE rushes_audit_dropped_total counter\nrushes_audit_dropped_total {}",
        audit.dropped
    );
    out
}

/// Serve `/metrics` on `addr` until the future is dropped.
pub async fn serve(addr: SocketAddr, daemon: Arc<Daemon>) -> anyhow::Result<()> {
    use anyhow::Context;
    let app = Router::new()
        .route(
            "/metrics",
            get(|State(m): State<Arc<Daemon>>| async move {
                let body = tokio::task::spawn_blocking(move || {
                    let _ = rushes_nas::sys::run_as_root();
                    render(&m)
                })
                .await
                .unwrap_or_default();
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4",
                    )],
                    body,
                )
            }),
        )
        .with_state(daemon);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for Prometheus on {addr}"))?;
    tracing::info!(%addr, "Prometheus metrics at /metrics");
    axum::serve(listener, app)
        .await
        .context("the metrics endpoint stopped")
}
