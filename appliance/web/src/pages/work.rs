//! Jobs with their progress; alerts; placement rules, copy targets, explain and
//! simulate.

use maud::{html, Markup};
use rushes_api as api;
use rushes_api::Role;

use super::common::{bar, enc, size, unread, when, Page};

/// Jobs as a table, with Cancel for those that take it (operators and admins).
pub fn job_table(page: &Page, jobs: &[&api::Job]) -> Markup {
    let operator = page.may(Role::Operator);
    html! {
        table {
            tr { th { "Job" } th { "Kind" } th { "On" } th { "State" } th { "Progress" } th { "Step" } th { "Started (UTC)" } th {} }
            @for j in jobs {
                tr {
                    td { (j.id) } td { (j.kind) } td { (j.target.name) }
                    td { (format!("{:?}", j.state).to_lowercase()) }
                    td { @if let Some(f) = j.fraction { (bar(f)) } }
                    td { (j.step) @if let Some(e) = &j.error { br; small.error { (e) } } }
                    td { (when(j.started)) }
                    td { @if operator && j.cancellable && j.state.is_active() {
                        button type="button" data-api=(format!("POST /v1/jobs/{}/cancel", j.id)) { "Cancel" }
                    } }
                }
            }
        }
    }
}

pub async fn jobs(page: &Page) -> Markup {
    match page.get::<Vec<api::Job>>("/v1/jobs").await {
        Err(e) => unread("the jobs", &e),
        Ok(jobs) if jobs.is_empty() => html! { p { "No jobs yet." } },
        Ok(jobs) => {
            let mut all: Vec<&api::Job> = jobs.iter().collect();
            all.sort_by_key(|j| std::cmp::Reverse(j.id));
            job_table(page, &all)
        }
    }
}

pub async fn alerts(page: &Page) -> Markup {
    let current = page.get::<Vec<api::Alert>>("/v1/alerts").await;
    let history = page.get::<Vec<api::Alert>>("/v1/alerts/history").await;
    let operator = page.may(Role::Operator);
    let list = |alerts: &[api::Alert], live: bool| {
        html! {
            table {
                tr { th { "Severity" } th { "What" } th { "What to do" } th { "Since (UTC)" } th {} }
                @for a in alerts {
                    tr class=(format!("{:?}", a.severity).to_lowercase()) {
                        td { (format!("{:?}", a.severity).to_lowercase()) } td { (a.message) } td { (a.action) } td { (when(a.since)) }
                        td { @if live && operator && a.dismissable {
                            button type="button" data-api=(format!("POST /v1/alerts/{}/dismiss", enc(&a.id))) { "Dismiss" }
                        } }
                    }
                }
            }
        }
    };
    html! {
        section {
            h2 { "Now" }
            @match &current {
                Err(e) => (unread("the alerts", e)),
                Ok(a) if a.is_empty() => p { "None: everything is healthy." },
                Ok(a) => (list(a, true)),
            }
        }
        section {
            h2 { "History" }
            @match &history {
                Err(e) => (unread("the history", e)),
                Ok(a) => (list(a, false)),
            }
        }
    }
}

pub async fn placement(page: &Page, explain: Option<&str>) -> Markup {
    let rules = page.get::<api::Placement>("/v1/placement").await;
    let targets = page.get::<Vec<api::TargetView>>("/v1/targets").await;
    let explained = match explain.filter(|p| !p.is_empty()) {
        Some(path) => Some(
            page.get::<api::PlacementExplain>(&format!("/v1/placement/explain?path={}", enc(path)))
                .await,
        ),
        None => None,
    };
    html! {
        section {
            h2 { "Rules, first match wins" }
            @match &rules {
                Err(e) => (unread("the rules", e)),
                Ok(p) => {
                    @for problem in &p.problems { p.error { (format!("{problem:?}")) } }
                    @if p.rules.is_empty() { p { "No rules: files stay where they are made." } }
                    @else {
                        table {
                            tr { th { "Rule" } th { "Does" } th { "When" } th { "Files" } }
                            @for r in &p.rules {
                                tr {
                                    td { (r.name) }
                                    td { (r.action) @if let Some(pool) = &r.pool { " on " (pool) }
                                         @if let Some(n) = r.copies { " " (n) " copies on " (r.targets.join(", ")) } }
                                    td { (r.on.join(", ")) }
                                    td { (r.conditions.join("; ")) }
                                }
                            }
                        }
                    }
                    @if !p.watermarks.is_empty() {
                        h3 { "Watermarks" }
                        ul { @for w in &p.watermarks { li { (w.pool) ": above " (w.high) " % until below " (w.low) " %, " (w.weight) " first" } } }
                    }
                }
            }
            @if page.may(Role::Operator) {
                button type="button" data-api="POST /v1/placement/simulate" data-body="{}" data-show="report" { "Simulate the rules now" }
                pre.result hidden {}
            }
        }
        section {
            h2 { "Explain a file" }
            form method="get" action="/ui/placement" {
                input name="explain" size="50" placeholder="SHARE/PATH" value=(explain.unwrap_or(""));
                button { "Explain" }
            }
            @match &explained {
                None => {},
                Some(Err(e)) => (unread("why", e)),
                Some(Ok(x)) => {
                    p { (x.share) "/" (x.path) ", " (size(x.size_bytes)) ", data on " (x.pool) ": " strong { (x.outcome) } }
                    ul { @for v in &x.verdicts { li { (v.rule) ": " (if v.matched { "matches" } else { "does not match" }) " (" (v.why) ")" } } }
                }
            }
        }
        section {
            h2 { "Copy targets" }
            @match &targets {
                Err(e) => (unread("the targets", e)),
                Ok(t) if t.is_empty() => p { "No targets: rushesctl target set makes one." },
                Ok(t) => table {
                    tr { th { "Target" } th { "Kind" } th { "Reachable" } th { "Holds" } th { "Last error" } }
                    @for target in t {
                        tr {
                            td { (target.name) } td { (target.place.kind()) }
                            td { @match &target.health { Some(h) => { (if h.ok { "yes" } else { "no" }) ", " (when(h.checked_at)) }, None => "not checked yet" } }
                            td { @if let Some(s) = &target.stored { (s.files) " files, " (size(s.bytes)) } }
                            td { @if let Some(h) = &target.health { (h.error.as_deref().unwrap_or("")) } }
                        }
                    }
                },
            }
        }
    }
}
