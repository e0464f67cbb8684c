//! Pools and disks; shares and accounts, with the forms that make them.

use maud::{html, Markup};
use rushes_api as api;
use rushes_api::Role;

use super::common::{bar, size, unread, Page};

pub async fn pools(page: &Page) -> Markup {
    let pools = page.get::<Vec<api::Pool>>("/v1/pools").await;
    let disks = page.get::<Vec<api::Disk>>("/v1/disks").await;
    html! {
        section {
            h2 { "Pools" }
            @match &pools {
                Err(e) => (unread("the pools", e)),
                Ok(pools) if pools.is_empty() => p { "No pools yet: the console's Disks screen makes one." },
                Ok(pools) => table {
                    tr { th { "Pool" } th { "Level" } th { "Class" } th { "State" } th { "Fill" } th { "Members" } th { "md" } }
                    @for p in pools {
                        @let used = if p.size_bytes > 0 { p.used_bytes as f64 / p.size_bytes as f64 } else { 0.0 };
                        tr {
                            td { (p.name) } td { (p.level.as_str()) } td { (format!("{:?}", p.class).to_lowercase()) }
                            td { (format!("{:?}", p.state).to_lowercase()) @if let Some(why) = &p.problem { br; small { (why) } } }
                            td { (bar(used)) " of " (size(p.size_bytes)) }
                            td { @for m in &p.members { (m.disk.as_deref().unwrap_or("missing")) " " } }
                            td { @if let Some(s) = &p.sync { (s.action) " " (bar(s.fraction)) } }
                        }
                    }
                },
            }
        }
        section {
            h2 { "Disks" }
            @match &disks {
                Err(e) => (unread("the disks", e)),
                Ok(disks) => table {
                    tr { th { "Disk" } th { "Transport" } th { "Size" } th { "Model" } th { "Serial" } th { "In use by" } }
                    @for d in disks {
                        tr {
                            td { (d.name) } td { (format!("{:?}", d.transport).to_lowercase()) } td { (size(d.size_bytes)) }
                            td { (d.model) } td { (d.serial) }
                            td { @if d.boot { "boot stick" } @else { (d.in_use_by.as_deref().unwrap_or("")) } }
                        }
                    }
                },
            }
        }
    }
}

pub async fn shares(page: &Page) -> Markup {
    let shares = page.get::<Vec<api::Share>>("/v1/shares").await;
    let users = page.get::<Vec<api::User>>("/v1/users").await;
    let pools = page
        .get::<Vec<api::Pool>>("/v1/pools")
        .await
        .unwrap_or_default();
    let admin = page.may(Role::Admin);
    html! {
        section {
            h2 { "Shares" }
            @match &shares {
                Err(e) => (unread("the shares", e)),
                Ok(shares) => table {
                    tr { th { "Share" } th { "Pool" } th { "Online" } th { "SMB" } th { "NFS clients" } th { "Accounts" } }
                    @for s in shares {
                        tr {
                            td { (s.name) } td { (s.pool) } td { (if s.online { "yes" } else { "no" }) }
                            td { (if s.smb { "yes" } else { "no" }) }
                            td { @for r in &s.rules { (r.clients.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(", ")) " " (format!("{:?}", r.access).to_lowercase()) "; " } }
                            td { @if s.users.is_empty() { "every account" } @else { (s.users.join(", ")) } }
                        }
                    }
                },
            }
            @if admin {
                form.inline data-api="POST /v1/shares" data-done="Share created." {
                    h3 { "Create a share" }
                    label { "Name " input name="name" required pattern="[A-Za-z0-9._-]+"; }
                    label { "Pool " select name="pool" required {
                        @for p in &pools { option value=(p.name) { (p.name) } }
                    } }
                    label { input type="checkbox" name="smb" data-kind="bool" checked; " over SMB too" }
                    button { "Create" }
                    p.error hidden {}
                }
            }
        }
        section {
            h2 { "Accounts" }
            @match &users {
                Err(e) => (unread("the accounts", e)),
                Ok(users) => table {
                    tr { th { "Account" } th { "uid" } th { "gid" } th { "SMB" } th { "Web role" } }
                    @for u in users {
                        tr {
                            td { (u.name) } td { (u.uid) } td { (u.gid) }
                            td { (if u.smb_password { "password set" } else { "no password" }) }
                            td { (u.role.map_or("none".to_string(), |r| r.to_string())) }
                        }
                    }
                },
            }
            @if admin {
                form.inline data-api="POST /v1/users" data-done="Account added." {
                    h3 { "Add an account" }
                    label { "Name " input name="name" required autocomplete="off"; }
                    label { "Password " input type="password" name="password" required autocomplete="new-password"; }
                    label { "Web role " select name="role" data-kind="optional" {
                        option value="" { "none" } option value="viewer" { "viewer" } option value="operator" { "operator" } option value="admin" { "admin" }
                    } }
                    button { "Add" }
                    p.error hidden {}
                }
            }
        }
    }
}
