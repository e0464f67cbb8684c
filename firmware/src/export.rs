//! How the emulated card presents a bay's namespace to the host: a ublk block device
//! (`/dev/ublkbN`) whose I/O the card's initiator carries to the bay.
//!
//! Each ublk queue runs on its own thread with an io_uring and a local executor: one
//! task per tag takes a request from the kernel, hands it to the initiator, and waits
//! for its completion. The initiator completes commands on its receive threads; they
//! pass the result over a channel and ring an eventfd the queue's io_uring is reading,
//! so the queue thread wakes at once instead of polling.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use libublk::helpers::IoBuf;
use libublk::io::{UblkDev, UblkQueue};
use libublk::{ctrl::UblkCtrlBuilder, BufDesc, UblkError, UblkFlags};

use crate::command;
use crate::initiator::{Controller, Data, InitiatorError, Namespace};

/// Counters per exported namespace, for the card's statistics.
#[derive(Debug, Default)]
pub struct IoStats {
    pub read_ops: AtomicU64,
    pub write_ops: AtomicU64,
    pub read_bytes: AtomicU64,
    pub write_bytes: AtomicU64,
    pub errors: AtomicU64,
    pub in_flight: AtomicU64,
}

/// A namespace exported as a ublk device; `stop` removes the device.
pub struct Export {
    pub nsid: u32,
    pub dev_id: u32,
    pub size_bytes: u64,
    pub stats: Arc<IoStats>,
    ctrl: Arc<libublk::ctrl::UblkCtrl>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Export {
    pub fn device(&self) -> String {
        format!("/dev/ublkb{}", self.dev_id)
    }

    pub fn stop(mut self) {
        if control_ring().is_err() {
            return;
        }
        let _ = self.ctrl.kill_dev();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = self.ctrl.del_dev();
    }
}

/// libublk keeps its control ring per thread: every thread that adds, stops or
/// removes a device needs one.
fn control_ring() -> Result<(), UblkError> {
    libublk::ctrl::ublk_init_ctrl_task_ring(|ring| {
        if ring.is_none() {
            *ring = Some(
                io_uring::IoUring::<io_uring::squeue::Entry128>::builder()
                    .build(32)
                    .map_err(UblkError::IOError)?,
            );
        }
        Ok(())
    })
}

/// Remove ublk devices a previous card process left behind (its server died with it);
/// run before serving, when no other card is running.
pub fn remove_stale_devices() {
    if let Err(e) = control_ring() {
        tracing::warn!(error = %e, "no ublk control ring");
        return;
    }
    libublk::ctrl::UblkCtrl::for_each_dev_id(|id| {
        if let Ok(ctrl) = libublk::ctrl::UblkCtrl::new_simple(id as i32) {
            let _ = ctrl.kill_dev();
            match ctrl.del_dev() {
                Ok(_) => tracing::info!(id, "removed a ublk device left by an earlier card"),
                Err(e) => tracing::warn!(id, error = %e, "cannot remove an old ublk device"),
            }
        }
    });
}

fn eventfd() -> std::io::Result<OwnedFd> {
    let fd = rustix::event::eventfd(0, rustix::event::EventfdFlags::CLOEXEC)?;
    Ok(fd)
}

fn ring(fd: &OwnedFd) {
    let _ = rustix::io::write(fd, &1u64.to_ne_bytes());
}

type Completion = Result<(command::Cqe, Vec<u8>), InitiatorError>;

/// Export namespace `ns` of `controller` as a new ublk device with `queues` queues of
/// `depth` requests. Returns once the device exists.
pub fn export(
    controller: Arc<Controller>,
    ns: Namespace,
    queues: u16,
    depth: u16,
) -> Result<Export, String> {
    // Whole 1 MiB requests (the card's largest transfer): a sequential stream is not
    // split in two on its way to the bay.
    let io_bytes = controller.max_transfer.min(1 << 20) as u32;
    let stats = Arc::new(IoStats::default());
    let size_bytes = ns.id.blocks * u64::from(ns.id.block_size);
    type Ready = Result<Arc<libublk::ctrl::UblkCtrl>, String>;
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Ready>();
    let thread = {
        let stats = Arc::clone(&stats);
        let ready_err = ready_tx.clone();
        std::thread::Builder::new()
            .name(format!("ublk-ns{}", ns.nsid))
            .spawn(move || {
                // The device is added, run and stopped on this thread, which owns
                // libublk's control ring for it.
                let built = control_ring().map_err(|e| e.to_string()).and_then(|()| {
                    UblkCtrlBuilder::default()
                        .name("rushes-card")
                        .nr_queues(queues)
                        .depth(depth)
                        .io_buf_bytes(io_bytes)
                        .dev_flags(UblkFlags::UBLK_DEV_F_ADD_DEV)
                        .build()
                        .map_err(|e| format!("cannot add a ublk device (is ublk_drv loaded?): {e}"))
                });
                let ctrl = match built {
                    Ok(c) => Arc::new(c),
                    Err(e) => {
                        let _ = ready_err.send(Err(e));
                        return;
                    }
                };
                let for_ready = Arc::clone(&ctrl);
                let shift = ns.id.block_size.trailing_zeros() as u8;
                let tgt_init = move |dev: &mut UblkDev| {
                    dev.set_default_params(size_bytes);
                    dev.tgt.params.basic.logical_bs_shift = shift;
                    dev.tgt.params.basic.physical_bs_shift = shift.max(12);
                    dev.tgt.params.basic.io_min_shift = shift.max(12);
                    Ok(())
                };
                let q_fn = move |qid: u16, dev: &UblkDev| {
                    serve_queue(qid, dev, &controller, ns.nsid, &stats);
                };
                let result = ctrl.run_target(tgt_init, q_fn, move |_| {
                    let _ = ready_tx.send(Ok(for_ready));
                });
                if let Err(e) = result {
                    let _ = ready_err.send(Err(format!("the ublk device failed: {e}")));
                }
            })
            .map_err(|e| e.to_string())?
    };
    match ready_rx.recv() {
        Ok(Ok(ctrl)) => Ok(Export {
            nsid: ns.nsid,
            dev_id: ctrl.dev_info().dev_id,
            size_bytes,
            stats,
            ctrl,
            thread: Some(thread),
        }),
        Ok(Err(e)) => Err(e),
        Err(_) => Err("the ublk device thread ended before the device started".into()),
    }
}

/// One ublk queue: a task per tag, plus a task that keeps a read of the eventfd in
/// the queue's io_uring so completions from the initiator wake it.
fn serve_queue(
    qid: u16,
    dev: &UblkDev,
    controller: &Arc<Controller>,
    nsid: u32,
    stats: &Arc<IoStats>,
) {
    let q = match UblkQueue::new(qid, dev) {
        Ok(q) => std::rc::Rc::new(q),
        Err(e) => {
            tracing::error!(error = %e, "cannot set up a ublk queue");
            return;
        }
    };
    let bell = match eventfd() {
        Ok(fd) => Arc::new(fd),
        Err(e) => {
            tracing::error!(error = %e, "no eventfd for the ublk queue");
            return;
        }
    };
    let exe = std::rc::Rc::new(smol::LocalExecutor::new());
    let mut tasks = Vec::new();
    for tag in q.tags() {
        let (q, controller, stats, bell) = (
            q.clone(),
            Arc::clone(controller),
            Arc::clone(stats),
            Arc::clone(&bell),
        );
        tasks.push(exe.spawn(async move {
            match io_task(&q, tag, &controller, nsid, &stats, &bell).await {
                Err(UblkError::QueueIsDown) | Ok(()) => {}
                Err(e) => tracing::error!(tag, error = %e, "ublk I/O task failed"),
            }
        }));
    }
    {
        let (q, bell) = (q.clone(), Arc::clone(&bell));
        // Not counted in `tasks`: it ends with the queue.
        exe.spawn(async move {
            let mut word = [0u8; 8];
            loop {
                let sqe = io_uring::opcode::Read::new(
                    io_uring::types::Fd(bell.as_raw_fd()),
                    word.as_mut_ptr(),
                    8,
                )
                .build();
                if q.ublk_submit_sqe(sqe).await < 0 && q.is_stopping() {
                    break;
                }
                if q.is_stopping() {
                    break;
                }
            }
        })
        .detach();
    }
    let exe2 = exe.clone();
    smol::block_on(exe.run(async move {
        let run_ops = || while exe2.try_tick() {};
        let done = || tasks.iter().all(|t| t.is_finished());
        if let Err(e) = libublk::wait_and_handle_io_events(&q, Some(20), run_ops, done).await {
            tracing::error!(error = %e, "ublk queue stopped");
        }
    }));
}

const UBLK_IO_OP_READ: u32 = 0;
const UBLK_IO_OP_WRITE: u32 = 1;
const UBLK_IO_OP_FLUSH: u32 = 2;

async fn io_task(
    q: &UblkQueue<'_>,
    tag: u16,
    controller: &Arc<Controller>,
    nsid: u32,
    stats: &IoStats,
    bell: &Arc<OwnedFd>,
) -> Result<(), UblkError> {
    let mut buf = IoBuf::<u8>::new(q.dev.dev_info.max_io_buf_bytes as usize);
    q.submit_io_prep_cmd(tag, BufDesc::Slice(buf.as_slice()), 0, Some(&buf))
        .await?;
    let (tx, rx) = smol::channel::bounded::<Completion>(1);
    // Lent to the initiator for each read and handed back with the data.
    let mut spare: Vec<u8> = Vec::new();
    let block = controller
        .namespaces
        .iter()
        .find(|n| n.nsid == nsid)
        .map_or(512, |n| u64::from(n.id.block_size));
    loop {
        let iod = q.get_iod(tag);
        let op = iod.op_flags & 0xff;
        let offset = iod.start_sector << 9;
        let bytes = (iod.nr_sectors as usize) << 9;
        let res = match op {
            UBLK_IO_OP_READ | UBLK_IO_OP_WRITE => {
                let write = op == UBLK_IO_OP_WRITE;
                let sqe = command::read_write(
                    write,
                    nsid,
                    offset / block,
                    (bytes as u64 / block) as u32,
                    bytes as u32,
                );
                let data = if write {
                    Data::Out(buf.as_slice()[..bytes].to_vec())
                } else {
                    Data::InBuf(std::mem::take(&mut spare), bytes)
                };
                stats.in_flight.fetch_add(1, Ordering::Relaxed);
                let (tx, bell) = (tx.clone(), Arc::clone(bell));
                controller.submit_io(
                    sqe,
                    data,
                    Box::new(move |r| {
                        let _ = tx.try_send(r);
                        ring(&bell);
                    }),
                );
                let outcome = rx.recv().await;
                stats.in_flight.fetch_sub(1, Ordering::Relaxed);
                match outcome {
                    Ok(Ok((cqe, data))) if cqe.ok() => {
                        if write {
                            stats.write_ops.fetch_add(1, Ordering::Relaxed);
                            stats.write_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
                        } else {
                            buf.as_mut_slice()[..bytes].copy_from_slice(&data[..bytes]);
                            spare = data;
                            stats.read_ops.fetch_add(1, Ordering::Relaxed);
                            stats.read_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
                        }
                        bytes as i32
                    }
                    _ => {
                        stats.errors.fetch_add(1, Ordering::Relaxed);
                        -libc::EIO
                    }
                }
            }
            UBLK_IO_OP_FLUSH => {
                let (tx, bell) = (tx.clone(), Arc::clone(bell));
                controller.submit_io(
                    command::flush(nsid),
                    Data::None,
                    Box::new(move |r| {
                        let _ = tx.try_send(r);
                        ring(&bell);
                    }),
                );
                match rx.recv().await {
                    Ok(Ok((cqe, _))) if cqe.ok() => 0,
                    _ => {
                        stats.errors.fetch_add(1, Ordering::Relaxed);
                        -libc::EIO
                    }
                }
            }
            _ => -libc::EOPNOTSUPP,
        };
        q.submit_io_commit_cmd(tag, BufDesc::Slice(buf.as_slice()), res)
            .await?;
    }
}
