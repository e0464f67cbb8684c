//! `card-bench`: the emulated offload card against the kernel's nvme-tcp initiator, on
//! the same nvmet target in one booted image (QEMU), in the same run. fio reads bay 2's
//! namespace through each path in turn: 4 KiB random reads at queue depth 32 and 1 MiB
//! sequential reads. Each round measures both paths, in alternating order (kernel
//! first in odd rounds, card first in even ones), and gives one card/kernel ratio; the
//! table prints the medians of IOPS and MB/s and the median of those paired ratios
//! (above 1.0: the card is faster), as `nfs-bench` does. Needs `make image` first; runs under TCG when there is no KVM, so the
//! absolute numbers are the emulator's, and only the ratio means something.

#![allow(clippy::print_stdout)] // a command-line report, not a daemon

use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;
use rushes_tests::bays::{start_bays, BAY2};
use rushes_tests::guest::sh;
use rushes_tests::vm::{copy_image, enable_debug_shell, Vm};
use serde_json::Value;

#[derive(Parser)]
#[command(about = "Benchmark the emulated card's path against the kernel's nvme-tcp initiator")]
struct Args {
    /// Rounds, each measuring both paths (the order alternating); the table shows
    /// medians, and the median of the rounds' card/kernel ratios.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Seconds per fio measurement.
    #[arg(long, default_value_t = 15)]
    seconds: u32,
}

struct Workload {
    name: &'static str,
    args: &'static str,
    /// Compare IOPS (small random reads) rather than MB/s (large sequential ones).
    by_iops: bool,
}

const WORKLOADS: [Workload; 2] = [
    Workload {
        name: "4 KiB random read, QD 32",
        args: "--rw=randread --bs=4k --iodepth=32",
        by_iops: true,
    },
    Workload {
        name: "1 MiB sequential read, QD 4",
        args: "--rw=read --bs=1m --iodepth=4",
        by_iops: false,
    },
];

fn json(vm: &Vm, command: &str) -> Result<Value> {
    let out = sh(vm, command);
    let start = out.find(['{', '[']).context("no JSON in the answer")?;
    serde_json::from_str(&out[start..]).with_context(|| format!("{command}: {out}"))
}

/// (IOPS, MB/s) of one fio read run.
fn fio(vm: &Vm, device: &str, args: &str, seconds: u32) -> Result<(f64, f64)> {
    let v = json(
        vm,
        &format!(
            "fio --name=bench --filename={device} --ioengine=libaio --direct=1 {args} \
             --time_based --runtime={seconds} --ramp_time=2 --output-format=json"
        ),
    )?;
    let read = &v["jobs"][0]["read"];
    let iops = read["iops"].as_f64().context("fio gave no IOPS")?;
    let bw = read["bw_bytes"].as_f64().context("fio gave no bandwidth")? / 1e6;
    Ok((iops, bw))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() -> Result<()> {
    let args = Args::parse();
    let work = tempfile::tempdir()?;
    let image = copy_image(work.path())?;
    enable_debug_shell(&image)?;
    let mut vm = Vm::boot_with(&image, work.path(), &[("RUSHES_NVME_SIZE", "1G")])?;
    vm.wait_for("rushes: ready", 0, Duration::from_secs(600))?;
    let fabrics = json(&vm, "rushesctl --json fabrics")?;
    let hostnqn = fabrics["hostnqn"]
        .as_str()
        .context("no host NQN")?
        .to_string();
    start_bays(&vm, &hostnqn);

    // The kernel path first, to fill the namespace so reads touch real data.
    let connected = json(
        &vm,
        &format!("rushesctl --json fabric connect {BAY2} --address 127.0.0.1:4430"),
    )?;
    let kernel_dev = format!(
        "/dev/{}",
        connected["namespaces"][0]
            .as_str()
            .context("bay 2 has no namespace")?
    );
    sh(
        &vm,
        &format!(
            "fio --name=fill --filename={kernel_dev} --ioengine=libaio --direct=1 \
             --rw=write --bs=1m --iodepth=4 --output-format=terse >/dev/null"
        ),
    );
    // The card reaches the same subsystem over its own connection. rushesd refuses a
    // second host path to one bay, so the benchmark asks the card directly: it only
    // reads.
    sh(&vm, "rushesctl card mode emulated");
    let attached = json(
        &vm,
        &format!(
            "rushes-card rpc bay_attach '{{\"traddr\":\"127.0.0.1\",\"trsvcid\":\"4430\",\"subnqn\":\"{BAY2}\"}}' --socket /run/rushes/card.sock"
        ),
    )?;
    let card_dev = attached[0]["device"]
        .as_str()
        .context("the card presented no device")?
        .to_string();

    let mut results = Vec::new();
    for w in &WORKLOADS {
        let (mut k_iops, mut k_bw, mut c_iops, mut c_bw) = (vec![], vec![], vec![], vec![]);
        let mut ratios = vec![];
        for round in 0..args.rounds {
            let card_first = round % 2 == 1;
            let (kernel, card) = if card_first {
                let card = fio(&vm, &card_dev, w.args, args.seconds)?;
                (fio(&vm, &kernel_dev, w.args, args.seconds)?, card)
            } else {
                let kernel = fio(&vm, &kernel_dev, w.args, args.seconds)?;
                (kernel, fio(&vm, &card_dev, w.args, args.seconds)?)
            };
            let (ki, kb) = kernel;
            let (ci, cb) = card;
            let (k, c) = if w.by_iops { (ki, ci) } else { (kb, cb) };
            if k <= 0.0 {
                bail!(
                    "{}: the kernel path did no I/O in round {}",
                    w.name,
                    round + 1
                );
            }
            ratios.push(c / k);
            eprintln!(
                "{} round {} ({} first): kernel {ki:.0} IOPS {kb:.1} MB/s, card {ci:.0} IOPS {cb:.1} MB/s, card/kernel {:.2}",
                w.name,
                round + 1,
                if card_first { "card" } else { "kernel" },
                c / k
            );
            k_iops.push(ki);
            k_bw.push(kb);
            c_iops.push(ci);
            c_bw.push(cb);
        }
        results.push((
            w,
            median(k_iops),
            median(k_bw),
            median(c_iops),
            median(c_bw),
            median(ratios),
        ));
    }
    let cpu = sh(&vm, "grep -m1 'model name' /proc/cpuinfo");
    println!(
        "emulated card vs kernel nvme-tcp, same nvmet target, {} rounds of {} s, order alternating",
        args.rounds, args.seconds
    );
    println!("guest CPU: {}", cpu.trim());
    println!(
        "{:<30} {:>12} {:>12} {:>12} {:>12} {:>16}",
        "workload", "kernel IOPS", "card IOPS", "kernel MB/s", "card MB/s", "card/kernel"
    );
    for (w, ki, kb, ci, cb, ratio) in &results {
        println!(
            "{:<30} {ki:>12.0} {ci:>12.0} {kb:>12.1} {cb:>12.1} {:>11.2}× {}",
            w.name,
            ratio,
            if w.by_iops { "IOPS" } else { "MB/s" }
        );
    }
    println!("(each cell a median over the rounds; card/kernel is the median of the rounds' paired ratios)");
    Ok(())
}
