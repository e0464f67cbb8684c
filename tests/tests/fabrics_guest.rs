//! NVMe-oF bays in the booted image (QEMU, TCG). The kernel's own target, nvmet, serves
//! two "bays" of file-backed namespaces over NVMe/TCP on the guest's loopback: bay 1 on
//! two ports (two paths), bay 2 reachable only through a referral in bay 1's discovery
//! log. The appliance discovers both, connects them, builds a RAID-5 on their
//! namespaces and serves a share from it; paths and a whole bay are cut and restored
//! without losing a byte; and after rushesd starts afresh with nothing connected, it
//! connects the saved paths before it assembles the pool.

use std::time::{Duration, Instant};

use rushes_tests::bays::{link, start_bays, BAY1, BAY2};
use rushes_tests::guest::{
    ctl, ctl_json, payload, read_share_file, sh, wait_json, write_share_file, SHORT,
};
use rushes_tests::vm::{copy_image, enable_debug_shell, Vm};
use serde_json::Value;

const BOOT: Duration = Duration::from_secs(600);
const MD_WORK: Duration = Duration::from_secs(900);

/// Each of `names` is in the inventory as a 256 MiB disk over `transport`.
fn assert_disks(vm: &Vm, names: &[String], transport: &str) {
    let disks = ctl_json(vm, "disks");
    for name in names {
        let d = disks
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["name"] == name.as_str())
            .unwrap_or_else(|| panic!("{name} is not in the inventory: {disks:#}"));
        assert_eq!(d["transport"], transport, "{d}");
        assert_eq!(d["size_bytes"], 256u64 << 20, "{d}");
    }
}

/// The subsystem `nqn` in `rushesctl --json fabrics`.
fn subsystem(fabrics: &Value, nqn: &str) -> Value {
    fabrics["subsystems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["nqn"] == nqn)
        .cloned()
        .unwrap_or(Value::Null)
}

fn path_state(fabrics: &Value, nqn: &str, port: &str) -> String {
    subsystem(fabrics, nqn)["paths"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["trsvcid"] == port)
        .and_then(|p| p["state"].as_str())
        .unwrap_or("absent")
        .to_string()
}

async fn write_file(port: u16, name: &str, data: &[u8]) {
    write_share_file(port, "/edit", name, data).await
}

async fn read_file(port: u16, name: &str) -> Vec<u8> {
    read_share_file(port, "/edit", name).await
}

#[tokio::test(flavor = "multi_thread")]
async fn bays_are_discovered_connected_pooled_and_survive_link_loss() {
    let mut steps = rushes_tests::vm::Steps::new("fabrics_guest");
    let work = tempfile::tempdir().unwrap();
    let image = copy_image(work.path()).unwrap();
    enable_debug_shell(&image).unwrap();
    // QEMU's PCI test device (1b36:0005) stands in for a card's PCI function.
    let mut vm = Vm::boot_with_devices(
        &image,
        work.path(),
        &[("RUSHES_NVME_SIZE", "1G")],
        &["-device", "pci-testdev"],
    )
    .unwrap();
    vm.wait_for("rushes: ready", 0, BOOT).unwrap();

    steps.done("boot to ready");
    // The host identity is made once and kept on RUSHES-CFG.
    let fabrics = ctl_json(&vm, "fabrics");
    let hostnqn = fabrics["hostnqn"].as_str().unwrap().to_string();
    assert!(
        hostnqn.starts_with("nqn.2014-08.org.nvmexpress:uuid:"),
        "{fabrics}"
    );
    assert_eq!(fabrics["available"], true, "{fabrics}");
    let kept = sh(&vm, "cat /cfg/state/fabrics-host");
    assert!(kept.contains(&hostnqn), "{kept}");

    start_bays(&vm, &hostnqn);

    steps.done("the host identity is made once");
    // Bad input is refused before it reaches the kernel's option string.
    let out = ctl(
        &vm,
        &format!("fabric connect {BAY1},hostnqn=evil --address 127.0.0.1:4420"),
        1,
        SHORT,
    );
    assert!(out.contains("not usable"), "{out}");
    let out = ctl(&vm, "fabric discover 127.0.0.1:4999", 1, SHORT);
    assert!(out.contains("no discovery controller answered"), "{out}");

    steps.done("bad input is refused before it");
    // Discovery on port 4420 lists bay 1 and, through the referral, bay 2.
    let found = ctl_json(&vm, "fabric discover 127.0.0.1:4420");
    let subs = found["subsystems"].as_array().unwrap();
    let listed = |nqn: &str, port: &str| {
        subs.iter()
            .any(|s| s["nqn"] == nqn && s["trsvcid"] == port && s["transport"] == "tcp")
    };
    assert!(listed(BAY1, "4420"), "{found:#}");
    assert!(
        listed(BAY2, "4430"),
        "bay 2 comes through the referral: {found:#}"
    );
    assert_eq!(
        found["visited"].as_array().unwrap().len(),
        2,
        "two discovery controllers read: {found:#}"
    );
    steps.done("discovery on port 4420 lists bay");
    // A bay that announces its discovery controller over mDNS is found without an
    // address.
    sh(
        &vm,
        "rushes-card announce --port 8009 --address 10.0.2.15 --name bay1 \
         > /tmp/announce.log 2>&1 & echo $! > /tmp/announce.pid",
    );
    let heard = ctl_json(&vm, "fabric discover --mdns");
    assert!(
        heard["subsystems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["nqn"] == BAY1 && s["traddr"] == "10.0.2.15" && s["trsvcid"] == "8009"),
        "{heard:#}"
    );
    sh(&vm, "kill $(cat /tmp/announce.pid)");
    let table = ctl(&vm, "fabric discover", 0, SHORT);
    assert!(
        table.contains(BAY2) && table.contains("127.0.0.1:4420"),
        "the saved address is asked again: {table}"
    );

    steps.done("a bay that announces its discovery");
    // Connect bay 1 on two paths (native multipath) and bay 2 on one.
    ctl(
        &vm,
        &format!("fabric connect {BAY1} --address 127.0.0.1:4420"),
        0,
        SHORT,
    );
    ctl(
        &vm,
        &format!("fabric connect {BAY1} --address 127.0.0.1:4421"),
        0,
        SHORT,
    );
    ctl(
        &vm,
        &format!("fabric connect {BAY2} --address 127.0.0.1:4430"),
        0,
        SHORT,
    );
    let fabrics = ctl_json(&vm, "fabrics");
    let bay1 = subsystem(&fabrics, BAY1);
    assert_eq!(
        bay1["paths"].as_array().unwrap().len(),
        2,
        "two paths: {fabrics:#}"
    );
    assert_eq!(path_state(&fabrics, BAY1, "4420"), "live", "{fabrics:#}");
    assert_eq!(path_state(&fabrics, BAY1, "4421"), "live", "{fabrics:#}");
    let bay1_disks: Vec<String> = bay1["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        bay1_disks.len(),
        3,
        "one disk per namespace, not per path: {fabrics:#}"
    );
    let bay2_disks: Vec<String> = subsystem(&fabrics, BAY2)["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().to_string())
        .collect();
    assert_eq!(bay2_disks.len(), 1, "{fabrics:#}");

    steps.done("connect bay 1 on two paths");
    // The namespaces are disks like any other, with their transport.
    let members: Vec<String> = bay1_disks.iter().chain(&bay2_disks).cloned().collect();
    assert_disks(&vm, &members, "nvme-tcp");

    steps.done("the namespaces are disks like any");
    // A RAID-5 across both bays, with a share on it.
    ctl(
        &vm,
        &format!(
            "pool create flash --level raid5 {} --wait",
            members.join(" ")
        ),
        0,
        MD_WORK,
    );
    ctl(&vm, "share create edit --pool flash", 0, SHORT);
    let port = vm.port;
    let first = payload(1, 3 << 20);
    write_file(port, "a.mov", &first).await;

    steps.done("a raid-5 across both bays, with");
    // Disconnecting bay 2 would take a pool member away: refused.
    let out = ctl(&vm, &format!("fabric disconnect {BAY2}"), 1, SHORT);
    assert!(out.contains("in use"), "{out}");

    steps.done("disconnecting bay 2 would take a");
    // One of bay 1's two paths goes down: a warning, and I/O goes on over the other.
    link(&vm, 2, BAY1, false);
    wait_json(&vm, "fabrics", SHORT, "path 4421 down", |f| {
        path_state(f, BAY1, "4421") != "live"
    });
    let alerts = wait_json(&vm, "alerts", SHORT, "a path alert", |a| {
        a.as_array()
            .unwrap()
            .iter()
            .any(|a| a["id"].as_str().unwrap_or("").starts_with("fabric-path:"))
    });
    let alert = alerts
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"].as_str().unwrap_or("").contains(BAY1))
        .unwrap_or_else(|| panic!("{alerts:#}"));
    assert_eq!(
        alert["severity"], "warning",
        "another path carries it: {alert}"
    );
    let second = payload(2, 2 << 20);
    write_file(port, "b.mov", &second).await;
    assert_eq!(read_file(port, "a.mov").await, first);
    link(&vm, 2, BAY1, true);
    wait_json(&vm, "fabrics", SHORT, "path 4421 back", |f| {
        path_state(f, BAY1, "4421") == "live"
    });

    steps.done("one of bay 1's two paths");
    // Bay 2 drops off the network altogether while a write is under way: the kernel
    // holds the I/O, reconnects when the bay is back, and the write completes intact.
    link(&vm, 3, BAY2, false);
    wait_json(&vm, "alerts", SHORT, "a critical bay alert", |a| {
        a.as_array()
            .unwrap()
            .iter()
            .any(|a| a["id"].as_str().unwrap_or("").contains(BAY2) && a["severity"] == "critical")
    });
    let third = payload(3, 4 << 20);
    let writer = {
        let third = third.clone();
        tokio::spawn(async move { write_file(port, "c.mov", &third).await })
    };
    tokio::time::sleep(Duration::from_secs(5)).await;
    link(&vm, 3, BAY2, true);
    tokio::time::timeout(Duration::from_secs(300), writer)
        .await
        .expect("the write held during the outage completes once the bay is back")
        .unwrap();
    wait_json(&vm, "fabrics", SHORT, "bay 2 back", |f| {
        path_state(f, BAY2, "4430") == "live"
    });
    let pool = ctl_json(&vm, "pool show flash");
    assert_eq!(pool["state"], "online", "no member was failed: {pool:#}");
    assert_eq!(read_file(port, "a.mov").await, first);
    assert_eq!(read_file(port, "b.mov").await, second);
    assert_eq!(read_file(port, "c.mov").await, third);
    wait_json(&vm, "alerts", SHORT, "the path alerts clear", |a| {
        !a.as_array()
            .unwrap()
            .iter()
            .any(|a| a["id"].as_str().unwrap_or("").starts_with("fabric-path:"))
    });

    // rushesd starts afresh on a box where nothing is connected (as at boot, with the
    // bays already up): it connects the saved paths, then assembles and mounts the pool.
    // The share is taken away first: rushesd holds its folder open, and the pool has to
    // be unmounted behind its back to take everything down.
    ctl(&vm, "share delete edit", 0, SHORT);
    steps.done("bay 2 drops off the network");
    // The array's kernel name, as md gave it (not a guess at md127).
    let md = sh(&vm, "basename $(readlink -f /dev/md/flash)")
        .trim()
        .to_string();
    assert!(md.starts_with("md"), "{md}");
    let (out, rc) = vm
        .run(
            "kill -STOP $(pidof rushesd) && umount /pools/flash && mdadm --stop /dev/md/flash && \
             for c in /sys/class/nvme/nvme*; do \
               if [ \"$(cat $c/transport)\" = tcp ]; then echo 1 > $c/delete_controller; fi; done && \
             kill -9 $(pidof rushesd)",
            SHORT,
        )
        .unwrap();
    assert_eq!(rc, 0, "taking the pool and the bays down failed: {out}");
    let gone = sh(
        &vm,
        "cat /proc/mdstat; grep -l tcp /sys/class/nvme/*/transport || true",
    );
    assert!(
        !gone.contains(&format!("{md} :")) && !gone.contains("/transport"),
        "the pool and the bays were taken down: {out}\n{gone}"
    );
    // rushesd answers once it is back; until then rushesctl says it cannot reach it.
    let deadline = Instant::now() + BOOT;
    let pool = loop {
        let (out, rc) = vm.run("rushesctl --json pool show flash", SHORT).unwrap();
        if rc == 0 {
            let p: Value = serde_json::from_str(&out).unwrap();
            if p["state"] == "online" {
                break p;
            }
        }
        assert!(Instant::now() < deadline, "the pool is not back: {out}");
        std::thread::sleep(Duration::from_secs(2));
    };
    assert_eq!(
        pool["members"].as_array().unwrap().len(),
        4,
        "{pool:#} (before: {gone})"
    );
    let fabrics = ctl_json(&vm, "fabrics");
    assert_eq!(path_state(&fabrics, BAY1, "4420"), "live", "{fabrics:#}");
    assert_eq!(path_state(&fabrics, BAY1, "4421"), "live", "{fabrics:#}");
    assert_eq!(path_state(&fabrics, BAY2, "4430"), "live", "{fabrics:#}");
    ctl(&vm, "share create edit --pool flash", 0, SHORT);
    assert_eq!(read_file(port, "a.mov").await, first);
    assert_eq!(read_file(port, "c.mov").await, third);
    let log = sh(&vm, "cat /run/rushes/log.txt");
    let connected = log
        .find("connected a saved path")
        .expect("saved paths connected");
    let assembled = log[connected..]
        .find("assembled")
        .map(|i| i + connected)
        .unwrap_or_else(|| panic!("the pool was assembled after the paths came up:\n{log}"));
    assert!(connected < assembled);

    steps.done("the array's kernel name, as md");
    // Taking the pool down frees the bays to be disconnected.
    ctl(&vm, "share delete edit", 0, SHORT);
    ctl(&vm, "pool destroy flash --confirm flash", 0, MD_WORK);
    ctl(&vm, &format!("fabric disconnect {BAY2}"), 0, SHORT);
    ctl(&vm, &format!("fabric disconnect {BAY1}"), 0, SHORT);
    let fabrics = ctl_json(&vm, "fabrics");
    assert_eq!(
        fabrics["subsystems"].as_array().unwrap().len(),
        0,
        "{fabrics:#}"
    );

    steps.done("taking the pool down frees the");
    // The card's own initiator against the same kernel target: its discovery reads
    // bay 1 and the referral, and it writes and reads back through both data paths
    // (in-capsule and R2T), with CRC32C digests and without.
    let out = sh(&vm, "rushes-card discover 127.0.0.1:4420");
    let page: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let entries = page["entries"].as_array().unwrap();
    assert!(
        entries
            .iter()
            .any(|e| e["subnqn"] == BAY1 && e["trsvcid"] == "4420" && e["subtype"] == 2),
        "{page:#}"
    );
    assert!(
        entries
            .iter()
            .any(|e| e["subtype"] == 1 && e["trsvcid"] == "4430"),
        "the referral to bay 2: {page:#}"
    );
    for digests in ["", " --digests"] {
        let out = sh(
            &vm,
            &format!("rushes-card probe 127.0.0.1:4430 {BAY2} --verify-mib 8{digests}"),
        );
        let probe: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        assert_eq!(
            probe["namespaces"][0]["blocks"].as_u64().unwrap()
                * probe["namespaces"][0]["block_size"].as_u64().unwrap(),
            256 << 20,
            "{probe:#}"
        );
        assert!(
            probe["verified_bytes"].as_u64().unwrap() >= 8 << 20,
            "{probe:#}"
        );
    }
    steps.done("the card's own initiator against the");
    // A host the bay does not allow is refused, with the reason.
    sh(&vm, "printf 'hostnqn=nqn.2014-08.org.nvmexpress:uuid:00000000-0000-4000-8000-000000000000\nhostid=00000000-0000-4000-8000-000000000000\n' > /tmp/stranger");
    let (out, rc) = vm
        .run(
            &format!("rushes-card --host-file /tmp/stranger probe 127.0.0.1:4430 {BAY2}"),
            SHORT,
        )
        .unwrap();
    assert_ne!(rc, 0, "{out}");
    assert!(out.contains("not allowed"), "{out}");

    emulated_card(&vm).await;
    steps.done("a host the bay does not");
}

fn fio(vm: &Vm, device: &str, args: &str) -> String {
    let (out, rc) = vm
        .run(
            &format!(
                "fio --name=check --filename={device} --ioengine=libaio --direct=1 \
                 --verify=crc32c --verify_fatal=1 --do_verify=1 {args}"
            ),
            MD_WORK,
        )
        .unwrap();
    assert_eq!(rc, 0, "fio {args} on {device}:\n{out}");
    assert!(!out.contains("verify: bad"), "{out}");
    out
}

/// The emulated card carries bay 1: its namespaces become ublk disks that pass fio's
/// verification, ride out a link cut, hold a pool with a share, take firmware through
/// stage, activate and roll back, and come back after the card's engine is killed.
async fn emulated_card(vm: &Vm) {
    let card = ctl_json(vm, "card");
    assert_eq!(card["mode"], "off", "{card:#}");
    let card = ctl_json(vm, "card mode emulated --pci-id 1b36:0005");
    assert_eq!(card["state"], "ok", "{card:#}");
    let pci = card["pci"].as_array().unwrap();
    assert!(
        pci.len() == 1 && pci[0].as_str().unwrap().ends_with(" 1b36:0005"),
        "the card's PCI function is found by its IDs: {card:#}"
    );
    assert_eq!(card["model"], "Rushes emulated K200-LP", "{card:#}");
    let attached = ctl_json(vm, &format!("card attach {BAY1} --address 127.0.0.1:4420"));
    let devices: Vec<String> = attached
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            n["device"]
                .as_str()
                .unwrap()
                .trim_start_matches("/dev/")
                .to_string()
        })
        .collect();
    assert_eq!(devices.len(), 3, "{attached:#}");
    assert_disks(vm, &devices, "card");
    let table = ctl(vm, "disks", 0, SHORT);
    assert!(
        table.contains("HEALTH")
            && table
                .lines()
                .any(|l| l.starts_with(&devices[0]) && l.contains("card")),
        "{table}"
    );
    let dev = |i: usize| format!("/dev/{}", devices[i]);

    // fio's own checksums, through the card: 4 KiB random at depth 16, 1 MiB sequential.
    fio(
        vm,
        &dev(0),
        "--rw=randwrite --bs=4k --iodepth=16 --size=32m",
    );
    fio(vm, &dev(0), "--rw=write --bs=1m --iodepth=4 --size=64m");

    // The link under the card drops during a verified write and comes back: the card
    // holds the I/O, reconnects, and fio's verification still passes.
    sh(
        vm,
        &format!(
            "fio --name=cut --filename={} --ioengine=libaio --direct=1 --verify=crc32c \
             --verify_fatal=1 --do_verify=1 --rw=randwrite --bs=64k --iodepth=8 --size=96m \
             > /tmp/fio-cut.log 2>&1 & echo $! > /tmp/fio-cut.pid",
            dev(1)
        ),
    );
    std::thread::sleep(Duration::from_secs(3));
    link(vm, 1, BAY1, false);
    wait_json(vm, "card", SHORT, "the card reporting the lost link", |c| {
        c["state"] == "degraded"
    });
    std::thread::sleep(Duration::from_secs(3));
    link(vm, 1, BAY1, true);
    let (out, rc) = vm
        .run(
            "wait $(cat /tmp/fio-cut.pid); r=$?; cat /tmp/fio-cut.log; [ $r = 0 ]",
            MD_WORK,
        )
        .unwrap();
    assert_eq!(rc, 0, "fio across the link cut:\n{out}");
    wait_json(vm, "card", SHORT, "the card healthy again", |c| {
        c["state"] == "ok"
    });

    // A pool on the card's disks, with a share served over NFS.
    ctl(
        vm,
        &format!(
            "pool create carded --level raid5 {} --wait",
            devices.join(" ")
        ),
        0,
        MD_WORK,
    );
    ctl(vm, "share create edit --pool carded", 0, SHORT);
    let data = payload(9, 5 << 20);
    write_file(vm.port, "card.mov", &data).await;
    assert_eq!(read_file(vm.port, "card.mov").await, data);
    let out = ctl(vm, &format!("card detach {BAY1}"), 1, SHORT);
    assert!(out.contains("in use"), "{out}");
    ctl(vm, "share delete edit", 0, SHORT);
    ctl(vm, "pool destroy carded --confirm carded", 0, MD_WORK);

    // Firmware: a damaged bundle and one for another model are refused; a good one is
    // staged into slot B, activated, and rolled back.
    sh(
        vm,
        "rushes-card bundle /usr/sbin/rushes-card --version 0.2.0 -o /tmp/fw.bundle",
    );
    sh(
        vm,
        "rushes-card bundle /usr/sbin/rushes-card --model K200-LP --version 0.2.0 -o /tmp/other.bundle",
    );
    sh(vm, "cp /tmp/fw.bundle /tmp/bad.bundle; printf X | dd of=/tmp/bad.bundle bs=1 seek=4000 conv=notrunc 2>/dev/null");
    let out = ctl(vm, "card firmware stage /tmp/bad.bundle", 1, SHORT);
    assert!(out.contains("SHA-256"), "{out}");
    let out = ctl(vm, "card firmware stage /tmp/other.bundle", 1, SHORT);
    assert!(out.contains("not this"), "{out}");
    let staged = ctl_json(vm, "card firmware stage /tmp/fw.bundle");
    assert_eq!(staged["staged_slot"], "B", "{staged:#}");
    let active = ctl_json(vm, "card firmware activate");
    assert_eq!(
        (
            active["active_slot"].as_str(),
            active["firmware_version"].as_str()
        ),
        (Some("B"), Some("0.2.0")),
        "{active:#}"
    );
    let back = ctl_json(vm, "card firmware rollback");
    assert_eq!(back["active_slot"], "A", "{back:#}");
    // Each firmware step is a job of the card's, refusals failed with their reason.
    let jobs = ctl_json(vm, "jobs");
    let firmware: Vec<(String, String, String)> = jobs
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["target"]["kind"] == "card")
        .map(|j| {
            (
                j["kind"].as_str().unwrap_or_default().to_string(),
                j["state"].as_str().unwrap_or_default().to_string(),
                j["error"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let kinds: Vec<(&str, &str)> = firmware
        .iter()
        .map(|(k, s, _)| (k.as_str(), s.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("firmware-stage", "failed"),
            ("firmware-stage", "failed"),
            ("firmware-stage", "done"),
            ("firmware-activate", "done"),
            ("firmware-rollback", "done"),
        ],
        "{jobs:#}"
    );
    assert!(firmware[0].2.contains("SHA-256"), "{jobs:#}");

    // The card's engine dies: an alert, then rushesd starts it again and it carries
    // the bay once more.
    sh(vm, "kill -9 $(pidof rushes-card)");
    let card = wait_json(vm, "card", SHORT, "the card back", |c| {
        c["state"] == "ok" && c["namespaces"].as_array().is_some_and(|n| n.len() == 3)
    });
    assert_eq!(card["bays"][0]["nqn"], BAY1, "{card:#}");
    let log = sh(vm, "grep -c 'the offload card stopped' /run/rushes/log.txt");
    assert_eq!(log.trim(), "1", "the failure is logged once");
    ctl(vm, &format!("card detach {BAY1}"), 0, SHORT);
    ctl(vm, "card mode off", 0, SHORT);
}
