//! Search: the catalog's query line, facets, fifty results a page with their posters,
//! and a clip's details with its timecode and a recall.

use maud::{html, Markup};
use rushes_api::media::{Clip, Found};
use rushes_api::Role;

use super::common::{enc, size, unread, when, Page};

#[derive(Debug, Default, serde::Deserialize)]
pub struct SearchForm {
    #[serde(default)]
    pub q: String,
    #[serde(default)]
    pub offset: usize,
}

/// Results a page.
const PAGE: usize = 50;

fn clip_href(c: &Clip) -> String {
    format!("/ui/clip?id={}", enc(&c.id()))
}

pub async fn body(page: &Page, form: &SearchForm) -> Markup {
    let found = page
        .get::<Found>(&format!(
            "/v1/search?limit={PAGE}&offset={}&q={}",
            form.offset,
            enc(&form.q)
        ))
        .await;
    html! {
        form method="get" action="/ui/search" {
            input name="q" size="60" autofocus placeholder="reel:A003 codec:prores_4444 interview" value=(form.q);
            button { "Search" }
        }
        @match &found {
            Err(e) => (unread("the results", e)),
            Ok(found) => {
                p { (found.total) " clip(s)" @if found.total > PAGE { ", " (form.offset + 1) " to " ((form.offset + PAGE).min(found.total)) } }
                div.columns {
                    aside {
                        @for facet in &found.facets {
                            h3 { (facet.name) }
                            ul {
                                @for v in facet.values.iter().take(8) {
                                    li {
                                        a href=(format!("/ui/search?q={}", enc(format!("{} {}:{}", form.q, facet.name, v.value).trim()))) { (v.value) }
                                        " (" (v.count) ")"
                                    }
                                }
                            }
                        }
                    }
                    table.results {
                        tr { th {} th { "Clip" } th { "Codec" } th { "Picture" } th { "Rate" } th { "Duration" } th { "Timecode" } th { "Reel" } }
                        @for c in &found.clips {
                            @let s = c.summary();
                            tr {
                                td { @if c.media.as_ref().is_some_and(|m| m.video.is_some()) {
                                    img.poster loading="lazy" alt="" src=(format!("/v1/clips/{}/poster", enc(&c.id())));
                                } }
                                td { a href=(clip_href(c)) { (c.share) "/" (c.path) } }
                                td { (s.codec) } td { (s.picture) } td { (s.fps) } td { (s.duration) } td { (s.timecode) } td { (s.reel) }
                            }
                        }
                    }
                }
                p {
                    @if form.offset > 0 {
                        a href=(format!("/ui/search?q={}&offset={}", enc(&form.q), form.offset.saturating_sub(PAGE))) { "← earlier" } " "
                    }
                    @if form.offset + PAGE < found.total {
                        a href=(format!("/ui/search?q={}&offset={}", enc(&form.q), form.offset + PAGE)) { "later →" }
                    }
                }
            }
        }
    }
}

/// A clip's details page.
pub async fn clip(page: &Page, id: &str) -> (String, Markup) {
    let clip = match page.get::<Clip>(&format!("/v1/clips/{}", enc(id))).await {
        Ok(c) => c,
        Err(e) => return ("Clip".into(), unread("the clip", &e)),
    };
    let s = clip.summary();
    let title = clip
        .path
        .rsplit('/')
        .next()
        .unwrap_or(&clip.path)
        .to_string();
    let body = html! {
        @if clip.media.as_ref().is_some_and(|m| m.video.is_some()) {
            img.strip alt="" src=(format!("/v1/clips/{}/strip", enc(&clip.id())));
        }
        dl {
            dt { "Share" } dd { (clip.share) }
            dt { "Path" } dd { (clip.path) }
            dt { "Size" } dd { (size(clip.size)) }
            dt { "Modified" } dd { (when(clip.modified)) }
            dt { "Codec" } dd { (s.codec) }
            dt { "Picture" } dd { (s.picture) " at " (s.fps) }
            dt { "Duration" } dd { (s.duration) }
            dt { "Timecode" } dd { (s.timecode) }
            dt { "Reel" } dd { (s.reel) }
            @if let Some(e) = &clip.error { dt { "Unreadable" } dd { (e) } }
            @if !clip.members.is_empty() { dt { "Files" } dd { (clip.members.len()) " in the sequence" } }
        }
        @if page.may(Role::Operator) {
            @let paths = if clip.members.is_empty() { vec![clip.path.clone()] } else { clip.members.clone() };
            button type="button" data-api="POST /v1/copies/recall"
                data-body=(serde_json::json!({ "share": clip.share, "paths": paths }).to_string())
                data-done="Recall started: see Jobs." { "Recall from copies" }
        }
        p { a href="/ui/search" { "← Search" } }
    };
    (title, body)
}
