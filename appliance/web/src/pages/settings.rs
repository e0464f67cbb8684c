//! Settings (admins): network, time, the certificate, API tokens, and the config's
//! backup and restore and a support bundle, each a file the browser saves or sends.

use maud::{html, Markup};
use rushes_api as api;

use super::common::{unread, when, Page};

pub async fn body(page: &Page) -> Markup {
    let nics = page.get::<Vec<api::Nic>>("/v1/network").await;
    let clock = page.get::<api::Clock>("/v1/time").await;
    let web = page.get::<api::WebInfo>("/v1/web").await;
    let settings = page.get::<api::Settings>("/v1/settings").await;
    let tokens = page.get::<Vec<api::Token>>("/v1/tokens").await;
    html! {
        section {
            h2 { "Network" }
            @match &nics {
                Err(e) => (unread("the network", e)),
                Ok(nics) => table {
                    tr { th { "Interface" } th { "Link" } th { "Speed" } th { "MTU" } th { "Addresses" } }
                    @for n in nics {
                        tr {
                            td { (n.name) } td { (if n.link_up { "up" } else { "down" }) }
                            td { (n.speed_mbps.map_or("-".into(), |s| format!("{s} Mb/s"))) } td { (n.mtu) }
                            td { (n.addresses.join(", ")) }
                        }
                    }
                },
            }
        }
        section {
            h2 { "Host name, network, time zone and NTP" }
            @match &settings {
                Err(e) => (unread("the settings", e)),
                Ok(set) => form data-api="PUT /v1/settings" data-done="Saved: the host name applies at once, the network, time zone and NTP at the next start." {
                    label { "Host name " input name="hostname" data-kind="optional" value=(set.hostname.as_deref().unwrap_or("")); }
                    label { "Time zone " input name="timezone" data-kind="optional" placeholder="Europe/London" value=(set.timezone.as_deref().unwrap_or("")); }
                    label { "NTP servers " input name="ntp" data-kind="list" size="40" placeholder="pool.ntp.org, 10.0.0.1" value=(set.ntp.join(", ")); }
                    h3 { "How each interface gets its address" }
                    p { "An empty address means DHCP; * stands for every wired interface without a row of its own. Clear a row to remove it." }
                    table {
                        tr { th { "Interface" } th { "Address/prefix" } th { "Gateway" } th { "DNS servers" } th { "MTU" } }
                        // The rows there are, and one empty for a new entry.
                        @for (i, n) in set.network.iter().cloned().chain([api::NetworkSetting::default()]).enumerate() {
                            tr {
                                td { input name=(format!("network.{i}.interface")) data-kind="optional" size="8" placeholder="eth0 or *" value=(n.interface); }
                                td { input name=(format!("network.{i}.address")) data-kind="optional" size="16" placeholder="DHCP" value=(n.address.unwrap_or_default()); }
                                td { input name=(format!("network.{i}.gateway")) data-kind="optional" size="14" value=(n.gateway.unwrap_or_default()); }
                                td { input name=(format!("network.{i}.dns")) data-kind="list" size="22" value=(n.dns.join(", ")); }
                                td { input name=(format!("network.{i}.mtu")) data-kind="number" type="number" min="576" max="9216" size="5" placeholder="default" value=(n.mtu.map(|m| m.to_string()).unwrap_or_default()); }
                            }
                        }
                    }
                    button { "Save" }
                    p.error hidden {}
                    p.result hidden {}
                },
            }
        }
        section {
            h2 { "Time" }
            @match &clock {
                Err(e) => (unread("the clock", e)),
                Ok(c) => p {
                    (when(c.now)) " UTC; NTP servers: " (if c.ntp.is_empty() { "none".to_string() } else { c.ntp.join(", ") })
                    "; " (if c.kernel_synchronised { "synchronised" } else { "not synchronised" })
                },
            }
        }
        section {
            h2 { "Certificate" }
            @match &web {
                Err(e) => (unread("the certificate", e)),
                Ok(w) => @if let Some(cert) = &w.certificate {
                    dl {
                        dt { "SHA-256 fingerprint" } dd { code { (cert.fingerprint) } }
                        dt { "Subject" } dd { (cert.subject) }
                        dt { "Issuer" } dd { (cert.issuer) @if cert.self_signed { " (made by the box)" } }
                        dt { "Valid until" } dd { (when(cert.not_after)) }
                    }
                },
            }
            form data-api="PUT /v1/web/certificate" data-done="Certificate installed: reload the page and accept the new one." {
                h3 { "Install the facility's certificate" }
                label { "Certificate chain (PEM) " textarea name="certificate_pem" rows="4" cols="64" required {} }
                label { "Private key (PEM) " textarea name="key_pem" rows="4" cols="64" required {} }
                button { "Install" }
                p.error hidden {}
            }
        }
        section {
            h2 { "Backup and support" }
            p {
                "One file with every setting, pool, share, account, rule, copy target and certificate, "
                "its secrets sealed under the passphrase. Keep it off the box: a new boot stick finds "
                "the pools by their labels, and this file brings back the rest."
            }
            form.inline data-api="POST /v1/config/backup" data-download="" {
                label { "Passphrase " input type="password" name="passphrase" minlength="8" required autocomplete="new-password"; }
                button { "Download the backup" }
                p.error hidden {}
                p.result hidden {}
            }
            form.inline data-api="POST /v1/config/restore" data-confirm="Replace this box's settings, shares and accounts with the backup's? rushesd starts again on them." data-done="Restored: the box starts its services again on the backup's settings." {
                label { "Backup file " input type="file" name="content" data-kind="file" accept=".backup" required; }
                label { "Passphrase " input type="password" name="passphrase" required autocomplete="off"; }
                button { "Restore" }
                p.error hidden {}
                p.result hidden {}
            }
            p {
                button type="button" data-api="POST /v1/support-bundle" data-download="" { "Download a support bundle" }
                " logs, the config without its secrets, disks and SMART, alerts, jobs and versions: "
                "for whoever helps, never a password, key or token."
                span.error hidden {}
                span.result hidden {}
            }
        }
        section {
            h2 { "API tokens" }
            @match &tokens {
                Err(e) => (unread("the tokens", e)),
                Ok(tokens) => table {
                    tr { th { "Token" } th { "Role" } th { "Expires (UTC)" } th { "Last used" } th { "Made by" } th {} }
                    @for t in tokens {
                        tr {
                            td { (t.name) } td { (t.role) } td { (when(t.expires)) }
                            td { (t.last_used.map_or("never".to_string(), when)) } td { (t.made_by) }
                            td { button type="button" data-api=(format!("DELETE /v1/tokens/{}", t.name)) data-confirm=(format!("Revoke {}?", t.name)) { "Revoke" } }
                        }
                    }
                },
            }
            form.inline data-api="POST /v1/tokens" data-show="secret" {
                h3 { "Make a token" }
                label { "Name " input name="name" required pattern="[A-Za-z0-9._-]+"; }
                label { "Role " select name="role" { option value="viewer" { "viewer" } option value="operator" { "operator" } option value="admin" { "admin" } } }
                label { "Expires in " input name="expires" value="90d" size="5"; }
                button { "Make" }
                p.error hidden {}
                pre.result hidden {}
            }
        }
    }
}
