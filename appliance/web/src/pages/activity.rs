//! Activity: throughput and latency over the last minute or hour as charts, per client,
//! share, protocol or user; the busiest clients, shares, files and users; and a search
//! of the audit log with CSV export.

use maud::{html, Markup};
use rushes_api as api;

use super::common::{enc, size, unread, when, Page};

/// What the page was asked for: the charts' grouping and window, and an audit search.
#[derive(Debug, Default, serde::Deserialize)]
pub struct ActivityForm {
    #[serde(default)]
    pub by: String,
    #[serde(default)]
    pub window: String,
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub user: String,
    #[serde(default)]
    pub client: String,
    #[serde(default)]
    pub protocol: String,
}

/// Which chart: its grouping, window and measure, from a query that may hold anything.
#[derive(Debug, Default, serde::Deserialize)]
pub struct ChartView {
    #[serde(default)]
    pub by: String,
    #[serde(default)]
    pub window: String,
    #[serde(default)]
    pub metric: String,
}

/// The groupings the charts offer, as the API names them and as the page says them.
const GROUPINGS: [(&str, &str); 4] = [
    ("client", "client"),
    ("share", "share"),
    ("protocol", "protocol"),
    ("user", "user"),
];

impl ChartView {
    fn by(&self) -> &'static str {
        GROUPINGS
            .iter()
            .map(|(by, _)| *by)
            .find(|by| *by == self.by)
            .unwrap_or("client")
    }

    fn hour(&self) -> bool {
        self.window == "hour"
    }

    fn latency(&self) -> bool {
        self.metric == "latency"
    }

    /// Where the chart refreshes itself from.
    fn refresh(&self) -> String {
        format!(
            "/ui/activity/chart?by={}&window={}&metric={}",
            self.by(),
            if self.hour() { "hour" } else { "minute" },
            if self.latency() { "latency" } else { "bytes" }
        )
    }
}

/// A latency for people: µs, ms or s.
fn micros(us: u64) -> String {
    match us {
        0..1_000 => format!("{us} µs"),
        1_000..1_000_000 => format!("{:.1} ms", us as f64 / 1e3),
        _ => format!("{:.2} s", us as f64 / 1e6),
    }
}

/// One line per client (or share, …), newest on the right: bytes a second, or the
/// median latency (a gap where nothing was timed).
pub async fn chart(page: &Page, view: &ChartView) -> Markup {
    let window = if view.hour() { "hour" } else { "minute" };
    let series = match page
        .get::<Vec<api::ActivitySeries>>(&format!(
            "/v1/activity/series?by={}&window={window}",
            view.by()
        ))
        .await
    {
        Ok(s) => s,
        Err(e) => return unread("the chart", &e),
    };
    let (w, h) = (600.0, 160.0);
    let values = |s: &api::ActivitySeries| -> Vec<Option<u64>> {
        if view.latency() {
            s.p50_us.clone()
        } else {
            s.bytes_per_second.iter().map(|b| Some(*b)).collect()
        }
    };
    // The same colours as app.css's .c0 … .c5 (no inline style: the CSP allows none).
    let colours = [
        "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
    ];
    let shown: Vec<(&api::ActivitySeries, Vec<Option<u64>>)> = series
        .iter()
        .map(|s| (s, values(s)))
        .filter(|(_, v)| v.iter().any(Option::is_some))
        .take(colours.len())
        .collect();
    let peak = shown
        .iter()
        .flat_map(|(_, v)| v.iter().flatten().copied())
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    // Each run of points without a gap is one polyline.
    let lines = |v: &[Option<u64>]| -> Vec<String> {
        let step = w / (v.len().max(2) - 1) as f64;
        let mut out = Vec::new();
        let mut run = Vec::new();
        for (x, p) in v.iter().enumerate() {
            match p {
                Some(y) => run.push(format!(
                    "{:.1},{:.1}",
                    x as f64 * step,
                    h - *y as f64 * (h - 4.0) / peak
                )),
                None if !run.is_empty() => out.push(std::mem::take(&mut run).join(" ")),
                None => {}
            }
        }
        if !run.is_empty() {
            out.push(run.join(" "));
        }
        out
    };
    let what = if view.latency() {
        "median latency"
    } else {
        "bytes a second"
    };
    html! {
        svg.chart viewBox=(format!("0 0 {w} {h}")) role="img" aria-label=(format!("{what} per {}", view.by())) {
            @for (i, (_, v)) in shown.iter().enumerate() {
                @for points in lines(v) {
                    polyline points=(points) fill="none" stroke=(colours[i]) stroke-width="2" {}
                }
            }
        }
        p.legend {
            @for (i, (s, _)) in shown.iter().enumerate() {
                span class=(format!("c{i}")) { "■ " } (s.group) " "
            }
            "peak "
            @if view.latency() { (micros(peak as u64)) } @else { (size(peak as u64)) "/s" }
            " · " (if view.hour() { "the last hour, a point a minute" } else { "the last minute, a point a second" })
            @if shown.is_empty() { " — nothing in this window" }
        }
    }
}

/// The two charts, throughput and latency, with links to group and window them.
async fn charts(page: &Page, form: &ActivityForm) -> Markup {
    let view = |metric: &str| ChartView {
        by: form.by.clone(),
        window: form.window.clone(),
        metric: metric.into(),
    };
    let (bytes, latency) = (view("bytes"), view("latency"));
    let by = bytes.by();
    let hour = bytes.hour();
    let window = if hour { "hour" } else { "minute" };
    // An hour's points move once a minute: no need to ask every two seconds.
    let every = if hour { "15000" } else { "2000" };
    html! {
        section {
            h2 { "Over time" }
            p.choices {
                "Per "
                @for (name, label) in GROUPINGS {
                    @if name == by { b { (label) } } @else {
                        a href=(format!("/ui/activity?by={name}&window={window}")) { (label) }
                    }
                    " "
                }
                " · over the last "
                @for (name, label) in [("minute", "minute"), ("hour", "hour")] {
                    @if name == window { b { (label) } } @else {
                        a href=(format!("/ui/activity?by={by}&window={name}")) { (label) }
                    }
                    " "
                }
            }
            div.columns.charts {
                div {
                    h3 { "Throughput per " (by) }
                    div #chart data-refresh=(bytes.refresh()) data-every=(every) { (chart(page, &bytes).await) }
                }
                div {
                    h3 { "Latency (p50) per " (by) }
                    div #latency-chart data-refresh=(latency.refresh()) data-every=(every) { (chart(page, &latency).await) }
                }
            }
        }
    }
}

async fn report(page: &Page, by: &str) -> Markup {
    match page
        .get::<api::ActivityReport>(&format!("/v1/activity/report?window=minute&by={by}"))
        .await
    {
        Err(e) => unread(by, &e),
        Ok(r) => html! {
            table {
                tr { th { (by) } th { "ops/s" } th { "bytes/s" } th { "p50" } th { "p99" } th { "errors" } }
                @for row in &r.rows {
                    tr {
                        td { (row.group) } td { (format!("{:.1}", row.ops_per_s)) } td { (size(row.bytes_per_s as u64)) }
                        td { (row.p50_us.map_or("-".into(), |u| format!("{u} µs"))) }
                        td { (row.p99_us.map_or("-".into(), |u| format!("{u} µs"))) }
                        td { (row.errors) }
                    }
                }
            }
        },
    }
}

async fn top(page: &Page, by: &str) -> Markup {
    match page
        .get::<api::ActivityTop>(&format!("/v1/activity/top?window=minute&by={by}&limit=10"))
        .await
    {
        Err(e) => unread(by, &e),
        Ok(t) => html! {
            table {
                tr { th { (by) } th { "operations" } th { "bytes" } }
                @for row in &t.rows { tr { td { (row.group) } td { (row.ops) } td { (size(row.bytes)) } } }
            }
        },
    }
}

pub async fn body(page: &Page, form: &ActivityForm) -> Markup {
    let mut query = String::from("limit=100");
    for (k, v) in [
        ("path", &form.path),
        ("user", &form.user),
        ("client", &form.client),
        ("protocol", &form.protocol),
    ] {
        if !v.is_empty() {
            query.push_str(&format!("&{k}={}", enc(v)));
        }
    }
    let audit = page
        .get::<Vec<api::AuditRecord>>(&format!("/v1/audit?{query}"))
        .await;
    html! {
        (charts(page, form).await)
        section.columns {
            div { h2 { "Clients" } (report(page, "client").await) }
            div { h2 { "Shares" } (report(page, "share").await) }
            div { h2 { "Protocols" } (report(page, "protocol").await) }
        }
        section.columns {
            div { h2 { "Top files" } (top(page, "file").await) }
            div { h2 { "Top users" } (top(page, "user").await) }
        }
        section {
            h2 { "Audit log" }
            form method="get" action="/ui/activity" {
                input type="hidden" name="by" value=(form.by);
                input type="hidden" name="window" value=(form.window);
                input name="path" placeholder="path contains" value=(form.path);
                input name="user" placeholder="user" value=(form.user);
                input name="client" placeholder="client address" value=(form.client);
                input name="protocol" placeholder="nfs3, smb, https, console" value=(form.protocol);
                button { "Search" }
                " "
                a href=(format!("/v1/audit/export?format=csv&{query}")) download="audit.csv" { "Export CSV" }
            }
            @match &audit {
                Err(e) => (unread("the audit log", e)),
                Ok(records) => table {
                    tr { th { "When (UTC)" } th { "User" } th { "Client" } th { "Protocol" } th { "Op" } th { "Share" } th { "Path" } th { "Result" } }
                    @for r in records {
                        tr {
                            td { (when(r.time_ms / 1000)) } td { (r.user) } td { (r.client) } td { (r.protocol) }
                            td { (r.op) } td { (r.share) }
                            td { (r.path) @if let Some(to) = &r.to { " → " (to) } }
                            td { (r.result) }
                        }
                    }
                },
            }
        }
    }
}
