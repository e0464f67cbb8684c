//! What each service may do once started: the account it runs as, the capabilities it
//! and everything it runs can never hold, no gaining of privileges through exec
//! (`no_new_privs`: a set-user-ID program or file capabilities give nothing), and the
//! system calls it never makes, refused by a seccomp filter.

use rustix::thread::{
    remove_capability_from_bounding_set, set_no_new_privs, set_thread_gid, set_thread_groups,
    set_thread_uid, CapabilitySet,
};

/// Capabilities no service of the appliance uses. Only init reboots and powers off; only
/// chronyd sets the clock; nothing traces other processes, keeps process accounting,
/// loads BPF programs or reads performance counters, runs a MAC policy or the audit
/// subsystem, sets wake alarms or blocks suspend, restores checkpoints, marks files
/// immutable, or configures terminals. Removed from the bounding set, they cannot come
/// back, whatever the service runs.
pub const NEVER: CapabilitySet = CapabilitySet::SYS_BOOT
    .union(CapabilitySet::SYS_TIME)
    .union(CapabilitySet::SYS_PTRACE)
    .union(CapabilitySet::SYS_PACCT)
    .union(CapabilitySet::SYS_TTY_CONFIG)
    .union(CapabilitySet::BPF)
    .union(CapabilitySet::PERFMON)
    .union(CapabilitySet::MAC_OVERRIDE)
    .union(CapabilitySet::MAC_ADMIN)
    .union(CapabilitySet::AUDIT_CONTROL)
    .union(CapabilitySet::AUDIT_READ)
    .union(CapabilitySet::AUDIT_WRITE)
    .union(CapabilitySet::WAKE_ALARM)
    .union(CapabilitySet::BLOCK_SUSPEND)
    .union(CapabilitySet::CHECKPOINT_RESTORE)
    .union(CapabilitySet::LINUX_IMMUTABLE);

/// System calls no service of the appliance, nor anything it runs, makes: rebooting and
/// loading another kernel (init alone does that), swap and process accounting, tracing
/// and reading other processes, and the kernel interfaces that have been the way in for
/// privilege escalations without being of use here (userfaultfd, perf events, BPF
/// programs, I/O ports). Refused with EPERM, whatever capabilities remain.
#[cfg(target_arch = "x86_64")]
const NEVER_CALLED: &[i64] = {
    use nix::libc::*;
    &[
        SYS_kexec_load,
        SYS_kexec_file_load,
        SYS_reboot,
        SYS_swapon,
        SYS_swapoff,
        SYS_acct,
        SYS_ptrace,
        SYS_process_vm_readv,
        SYS_process_vm_writev,
        SYS_userfaultfd,
        SYS_perf_event_open,
        SYS_bpf,
        SYS_lookup_dcookie,
        SYS_uselib,
        SYS_iopl,
        SYS_ioperm,
    ]
};

/// What a service running as an account (the console) never calls besides: mounting,
/// kernel modules, namespaces, the host name, quotas, the kernel's keyring and io_uring.
#[cfg(target_arch = "x86_64")]
const NEVER_CALLED_BY_ACCOUNTS: &[i64] = {
    use nix::libc::*;
    &[
        SYS_mount,
        SYS_umount2,
        SYS_pivot_root,
        SYS_chroot,
        SYS_open_tree,
        SYS_move_mount,
        SYS_fsopen,
        SYS_fsconfig,
        SYS_fsmount,
        SYS_fspick,
        SYS_mount_setattr,
        SYS_init_module,
        SYS_finit_module,
        SYS_delete_module,
        SYS_unshare,
        SYS_setns,
        SYS_sethostname,
        SYS_setdomainname,
        SYS_quotactl,
        SYS_add_key,
        SYS_request_key,
        SYS_keyctl,
        SYS_io_uring_setup,
        SYS_io_uring_enter,
        SYS_io_uring_register,
    ]
};

/// The bit that makes a system call number x32's: such calls pass the filter's check of
/// the architecture (x32 is x86-64's), and reach the same kernel code by other numbers.
/// No service is an x32 program, so every one of them is refused, and none of the calls
/// above comes in that way.
#[cfg(target_arch = "x86_64")]
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// A seccomp program that refuses `calls` and every x32 call with EPERM, and lets every
/// other call through.
#[cfg(target_arch = "x86_64")]
fn refusing(calls: &[&[i64]]) -> Result<seccompiler::BpfProgram, String> {
    use nix::libc::{BPF_ABS, BPF_JGE, BPF_JMP, BPF_K, BPF_LD, BPF_RET, BPF_W};
    use seccompiler::{sock_filter, SeccompAction, SeccompFilter, TargetArch};
    let op = |code: u32, k: u32, jt: u8, jf: u8| sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    };
    // First: the call's number (seccomp_data.nr, at offset 0); at or past the x32 bit,
    // refused. The filter seccompiler compiles follows (its jumps are relative).
    let mut program = vec![
        op(BPF_LD | BPF_W | BPF_ABS, 0, 0, 0),
        op(BPF_JMP | BPF_JGE | BPF_K, X32_SYSCALL_BIT, 0, 1),
        op(
            BPF_RET | BPF_K,
            nix::libc::SECCOMP_RET_ERRNO | nix::libc::EPERM as u32,
            0,
            0,
        ),
    ];
    let rules = calls
        .iter()
        .flat_map(|set| set.iter())
        .map(|&call| (call, Vec::new()))
        .collect();
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(nix::libc::EPERM as u32),
        TargetArch::x86_64,
    )
    .map_err(|e| format!("cannot make the seccomp filter: {e}"))?;
    let compiled: seccompiler::BpfProgram = filter
        .try_into()
        .map_err(|e| format!("cannot compile the seccomp filter: {e}"))?;
    program.extend(compiled);
    Ok(program)
}

/// Elsewhere no filter is made: the lists above are x86-64's system calls.
#[cfg(not(target_arch = "x86_64"))]
fn refusing(_calls: &[&[i64]]) -> Result<seccompiler::BpfProgram, String> {
    Ok(Vec::new())
}
#[cfg(not(target_arch = "x86_64"))]
const NEVER_CALLED: &[i64] = &[];
#[cfg(not(target_arch = "x86_64"))]
const NEVER_CALLED_BY_ACCOUNTS: &[i64] = &[];

/// How far a service is confined.
#[derive(Debug, Clone, Copy)]
pub enum Confinement {
    /// Nothing taken away: the maintenance shell, which is for repairing the box.
    Unconfined,
    /// Root (the service mounts, assembles arrays, serves files as their owners), without
    /// the capabilities in [`NEVER`] other than `keep`, and with `no_new_privs`.
    Root { keep: CapabilitySet },
    /// This account of /etc/passwd with its group alone, no capabilities at all (the
    /// bounding set emptied too) and `no_new_privs`.
    User(&'static str),
}

/// What the child applies before exec, worked out before the fork (the child must not
/// allocate or read files).
#[derive(Debug, Clone)]
pub struct Plan {
    /// Capabilities to remove from the bounding set.
    drop: CapabilitySet,
    no_new_privs: bool,
    /// (uid, gid) to become.
    ids: Option<(u32, u32)>,
    /// The seccomp program installed last (empty: none).
    seccomp: seccompiler::BpfProgram,
}

impl Confinement {
    /// The plan for this confinement, reading /etc/passwd for an account; an account that
    /// is not there is an error (the service is not started rather than run as root).
    pub fn plan(self) -> Result<Plan, String> {
        self.plan_with(&std::fs::read_to_string("/etc/passwd").unwrap_or_default())
    }

    fn plan_with(self, passwd: &str) -> Result<Plan, String> {
        Ok(match self {
            Confinement::Unconfined => Plan {
                drop: CapabilitySet::empty(),
                no_new_privs: false,
                ids: None,
                seccomp: Vec::new(),
            },
            Confinement::Root { keep } => Plan {
                drop: NEVER.difference(keep),
                no_new_privs: true,
                ids: None,
                seccomp: refusing(&[NEVER_CALLED])?,
            },
            Confinement::User(name) => Plan {
                drop: CapabilitySet::all(),
                no_new_privs: true,
                ids: Some(account(passwd, name).ok_or_else(|| {
                    format!("there is no account {name:?} in /etc/passwd to run it as")
                })?),
                seccomp: refusing(&[NEVER_CALLED, NEVER_CALLED_BY_ACCOUNTS])?,
            },
        })
    }
}

impl Plan {
    /// Apply in the forked child, before exec: only system calls, no allocation.
    pub fn apply(&self) -> std::io::Result<()> {
        for cap in self.drop.iter() {
            match remove_capability_from_bounding_set(cap) {
                // A capability this kernel does not know is one nobody can hold.
                Ok(()) | Err(rustix::io::Errno::INVAL) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if self.no_new_privs {
            set_no_new_privs(true)?;
        }
        if let Some((uid, gid)) = self.ids {
            // SAFETY: none needed; these are the raw system calls on the only thread of
            // the forked child, so they change the whole process.
            set_thread_groups(&[])?;
            set_thread_gid(rustix::process::Gid::from_raw(gid))?;
            set_thread_uid(rustix::process::Uid::from_raw(uid))?;
        }
        if !self.seccomp.is_empty() {
            // Last, so nothing above is refused; it needs no_new_privs (set above, or by
            // the call itself). No allocation: the program was compiled before the fork.
            seccompiler::apply_filter(&self.seccomp)
                .map_err(|_| std::io::Error::last_os_error())?;
        }
        Ok(())
    }
}

/// (uid, gid) of account `name` in passwd(5) text.
fn account(passwd: &str, name: &str) -> Option<(u32, u32)> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        if fields.next()? != name {
            return None;
        }
        let _password = fields.next()?;
        let uid = fields.next()?.parse().ok()?;
        let gid = fields.next()?.parse().ok()?;
        Some((uid, gid))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
        rushes-console:x:120:120:the console:/nonexistent:/usr/sbin/nologin\n";

    #[test]
    fn an_account_runs_with_its_ids_and_nothing_else() {
        let plan = Confinement::User("rushes-console")
            .plan_with(PASSWD)
            .unwrap();
        assert_eq!(plan.ids, Some((120, 120)));
        assert!(plan.no_new_privs);
        assert_eq!(plan.drop, CapabilitySet::all());
    }

    #[test]
    fn a_missing_account_is_refused_not_run_as_root() {
        let err = Confinement::User("nobody-here")
            .plan_with(PASSWD)
            .unwrap_err();
        assert!(err.contains("nobody-here"), "{err}");
    }

    #[test]
    fn root_services_lose_what_none_needs_but_what_they_keep() {
        let plan = Confinement::Root {
            keep: CapabilitySet::SYS_TIME,
        }
        .plan_with(PASSWD)
        .unwrap();
        assert!(plan.drop.contains(CapabilitySet::SYS_BOOT));
        assert!(plan.drop.contains(CapabilitySet::SYS_PTRACE));
        assert!(!plan.drop.contains(CapabilitySet::SYS_TIME));
        // What serving files and pools needs stays.
        for needed in [
            CapabilitySet::SYS_ADMIN,
            CapabilitySet::SYS_MODULE,
            CapabilitySet::MKNOD,
            CapabilitySet::SETUID,
            CapabilitySet::DAC_OVERRIDE,
            CapabilitySet::NET_BIND_SERVICE,
        ] {
            assert!(!plan.drop.contains(needed), "{needed:?}");
        }
        assert!(plan.no_new_privs && plan.ids.is_none());
        let open = Confinement::Unconfined.plan_with(PASSWD).unwrap();
        assert!(open.drop.is_empty() && !open.no_new_privs);
    }

    /// In a forked child: install `plan`'s seccomp program (nothing else of the plan),
    /// make `call` with every argument -1 (which no kernel takes: the call fails with its
    /// own error, changing nothing), and answer the errno it failed with (0: it ran).
    fn errno_under(plan: &Plan, call: i64) -> i32 {
        use nix::sys::wait::{waitpid, WaitStatus};
        use nix::unistd::{fork, ForkResult};
        let seccomp = plan.seccomp.clone();
        // SAFETY: the child makes only system calls (seccomp, the probe, _exit): nothing
        // that could wait on a lock another thread of the test harness held at the fork.
        match unsafe { fork() }.expect("fork") {
            ForkResult::Child => unsafe {
                if !seccomp.is_empty() && seccompiler::apply_filter(&seccomp).is_err() {
                    nix::libc::_exit(255);
                }
                let rc = nix::libc::syscall(call, -1i64, -1i64, -1i64, -1i64);
                let errno = if rc < 0 {
                    *nix::libc::__errno_location()
                } else {
                    0
                };
                nix::libc::_exit(errno.min(254));
            },
            ForkResult::Parent { child } => match waitpid(child, None).expect("waitpid") {
                WaitStatus::Exited(_, code) => code,
                other => panic!("the probe ended as {other:?}"),
            },
        }
    }

    #[test]
    fn the_seccomp_filter_refuses_what_no_service_calls_and_nothing_else() {
        use nix::libc::{SYS_getppid, SYS_ptrace, SYS_unshare, EPERM};
        let open = Confinement::Unconfined.plan_with(PASSWD).unwrap();
        let root = Confinement::Root {
            keep: CapabilitySet::empty(),
        }
        .plan_with(PASSWD)
        .unwrap();
        let account = Confinement::User("rushes-console")
            .plan_with(PASSWD)
            .unwrap();
        assert!(open.seccomp.is_empty() && !root.seccomp.is_empty());
        // Unfiltered, the kernel turns the nonsense down with its own error (ESRCH,
        // EINVAL), not EPERM; a machine whose own policy says EPERM (a container's
        // seccomp, Yama) cannot run this test, and it says so.
        let ptrace = errno_under(&open, SYS_ptrace);
        let unshare = errno_under(&open, SYS_unshare);
        assert!(
            ptrace != EPERM && unshare != EPERM,
            "this machine refuses ptrace or unshare itself ({ptrace}, {unshare}): run elsewhere"
        );
        assert_eq!(errno_under(&root, SYS_ptrace), EPERM);
        // The root services' lists are short on purpose: what the tools they run (mdadm,
        // mount helpers, Samba, udev) might call stays allowed.
        assert_eq!(errno_under(&root, SYS_unshare), unshare);
        assert_eq!(errno_under(&account, SYS_ptrace), EPERM);
        assert_eq!(errno_under(&account, SYS_unshare), EPERM);
        // Nor by x32's numbers: x86-64's with the x32 bit (unshare), or x32's own
        // (ptrace, 521), which the kernel turns down unfiltered (ENOSYS where x32 is off).
        let x32 = i64::from(X32_SYSCALL_BIT);
        for call in [x32 | SYS_unshare, x32 | 521, x32 | SYS_getppid] {
            assert_ne!(errno_under(&open, call), EPERM, "{call:#x}");
            assert_eq!(errno_under(&root, call), EPERM, "{call:#x}");
            assert_eq!(errno_under(&account, call), EPERM, "{call:#x}");
        }
        // Everything else goes through.
        assert_eq!(errno_under(&account, SYS_getppid), 0);
        assert_eq!(errno_under(&root, SYS_getppid), 0);
    }
}
