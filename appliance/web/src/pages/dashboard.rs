//! Dashboard: pools with their fill and watermarks, throughput, clients, alerts and the
//! jobs running, refreshed every two seconds.

use maud::{html, Markup};
use rushes_api as api;

use super::common::{bar, size, unread, Page};

pub async fn body(page: &Page) -> Markup {
    let pools = page.get::<Vec<api::Pool>>("/v1/pools").await;
    let placement = page.get::<api::Placement>("/v1/placement").await.ok();
    let activity = page.get::<api::Activity>("/v1/activity").await;
    let alerts = page.get::<Vec<api::Alert>>("/v1/alerts").await;
    let jobs = page.get::<Vec<api::Job>>("/v1/jobs").await;
    let watermark = |pool: &str| {
        placement
            .as_ref()
            .and_then(|p| p.watermarks.iter().find(|w| w.pool == pool).cloned())
    };
    html! {
        section {
            h2 { "Pools" }
            @match &pools {
                Err(e) => (unread("the pools", e)),
                Ok(pools) if pools.is_empty() => p { "No pools yet." },
                Ok(pools) => table {
                    tr { th { "Pool" } th { "Level" } th { "State" } th { "Fill" } th { "Size" } th { "Watermarks" } }
                    @for p in pools {
                        @let used = if p.size_bytes > 0 { p.used_bytes as f64 / p.size_bytes as f64 } else { 0.0 };
                        tr {
                            td { (p.name) }
                            td { (p.level.as_str()) }
                            td { (format!("{:?}", p.state).to_lowercase()) }
                            td { (bar(used)) }
                            td { (size(p.used_bytes)) " of " (size(p.size_bytes)) }
                            td { @match watermark(&p.name) {
                                Some(w) => { "high " (w.high) " %, low " (w.low) " %" },
                                None => "none",
                            } }
                        }
                    }
                },
            }
        }
        section {
            h2 { "Throughput" }
            @match &activity {
                Err(e) => (unread("the traffic", e)),
                Ok(a) => {
                    @let last = a.seconds.last();
                    p {
                        "Last second: read " (size(last.map_or(0, |t| t.read_bytes))) "/s, written "
                        (size(last.map_or(0, |t| t.write_bytes))) "/s, "
                        (last.map_or(0, |t| t.ops)) " operations"
                    }
                    h3 { "Clients" }
                    @if a.clients.is_empty() { p { "No client in the last minute." } }
                    @else {
                        table {
                            tr { th { "Client" } th { "Operations" } th { "Read" } th { "Written" } }
                            @for c in &a.clients {
                                tr { td { (c.address) } td { (c.ops) } td { (size(c.read_bytes)) } td { (size(c.write_bytes)) } }
                            }
                        }
                    }
                }
            }
        }
        section {
            h2 { "Alerts" }
            @match &alerts {
                Err(e) => (unread("the alerts", e)),
                Ok(a) if a.is_empty() => p { "None: everything is healthy." },
                Ok(a) => ul {
                    @for alert in a {
                        li class=(format!("{:?}", alert.severity).to_lowercase()) { (alert.message) " — " (alert.action) }
                    }
                },
            }
        }
        section {
            h2 { "Running jobs" }
            @match &jobs {
                Err(e) => (unread("the jobs", e)),
                Ok(jobs) => {
                    @let running: Vec<&api::Job> = jobs.iter().filter(|j| j.state.is_active()).collect();
                    @if running.is_empty() { p { "None." } }
                    @else { (super::work::job_table(page, &running)) }
                }
            }
        }
    }
}
