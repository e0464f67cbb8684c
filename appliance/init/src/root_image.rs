//! The root image: `/usr` of the slot that booted (our programs, Samba, the libraries,
//! kernel modules and firmware) is a read-only squashfs file beside the slot's kernel on
//! RUSHES-BOOT, mounted before anything else runs. The initramfs holds only init, its C
//! library and the drivers that reach the stick, listed in [`BOOT_MODULES`] in the order
//! they load, so the kernel unpacks a few MiB into memory at boot instead of the whole
//! system, and the system's 190 MiB stay on the stick instead of in RAM.
//!
//! An initramfs without that list carries all of `/usr` itself, and nothing is mounted.

use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::boot::ESP_MOUNT;
use crate::console::console;
use crate::log::Ring;

/// The drivers that reach the boot stick, one path per line, each after what it needs
/// (written by mkimage). Its presence means `/usr` is to be mounted from the slot.
pub const BOOT_MODULES: &str = "/etc/rushes/boot-modules";
/// The root image's name in a slot's folder on RUSHES-BOOT.
pub const IMAGE: &str = "root.sqfs";
/// How long the stick may take to show up (USB enumeration under emulation is slow).
const STICK_WAIT: Duration = Duration::from_secs(120);

/// After a slot's root image could not be mounted, the pause before the reboot that
/// uses up one of its tries (as a kernel panic does, with `panic=10`).
const REBOOT_AFTER: Duration = Duration::from_secs(10);

/// Mount `/usr` from the booted slot's root image, when this initramfs needs it. When it
/// cannot, nothing can run: init says why on the console and reboots, and once the
/// slot's tries are used up the boot loader starts the other slot.
pub fn mount_usr(ring: &mut Ring) {
    let Ok(list) = std::fs::read_to_string(BOOT_MODULES) else {
        return;
    };
    let started = Instant::now();
    load_modules(ring, &list);
    match attach(ring) {
        Ok(line) => ring.push(
            "init",
            &format!("{line} in {:.1} s", started.elapsed().as_secs_f64()),
        ),
        Err(why) => {
            let line = format!(
                "rushes: cannot mount the system from the boot stick: {why}. This slot cannot start: rebooting in {} s. A slot still counting its tries (new from the factory or an update) gives way to the other one when they run out; a slot blessed before is tried again each time, and then the image must be written to the stick again",
                REBOOT_AFTER.as_secs()
            );
            console(&line);
            ring.push("init", &line);
            std::thread::sleep(REBOOT_AFTER);
            rustix::fs::sync();
            let Err(e) = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_AUTOBOOT);
            ring.push("init", &format!("reboot(2) failed: {e}"));
        }
    }
}

/// Load each module of the list, in order. One that is already there is fine; one that
/// fails is logged, and the stick may still be reachable without it.
fn load_modules(ring: &mut Ring, list: &str) {
    for path in list.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Err(e) = load_module(Path::new(path)) {
            ring.push("init", &format!("cannot load {path}: {e}"));
        }
    }
}

/// MODULE_INIT_COMPRESSED_FILE: the kernel decompresses the module itself (Debian's
/// kernels are built with CONFIG_MODULE_DECOMPRESS, and ship their modules xz-compressed).
const MODULE_INIT_COMPRESSED_FILE: u32 = 4;

fn load_module(path: &Path) -> std::io::Result<()> {
    let file = std::fs::File::open(path)?;
    let compressed = path
        .extension()
        .is_some_and(|e| e == "xz" || e == "zst" || e == "gz");
    let flags = nix::kmod::ModuleInitFlags::from_bits_retain(if compressed {
        MODULE_INIT_COMPRESSED_FILE
    } else {
        0
    });
    match nix::kmod::finit_module(file.as_fd(), c"", flags) {
        Ok(()) | Err(nix::errno::Errno::EEXIST) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Find RUSHES-BOOT, attach the slot's image to a loop device and mount it on /usr.
/// With more than one partition of that name (a second Rushes stick, an old image on a
/// disk), the first whose image carries the running kernel's modules is the one.
fn attach(ring: &mut Ring) -> Result<String, String> {
    let slot =
        crate::boot::slot().ok_or("the kernel command line names no slot (rushes.slot=a or b)")?;
    let candidates = wait_for_partitions(ring, "RUSHES-BOOT")?;
    let mut why = Vec::new();
    for partition in &candidates {
        match attach_from(partition, &slot) {
            Ok(line) => {
                if candidates.len() > 1 {
                    ring.push(
                        "init",
                        &format!(
                            "{} partitions are named RUSHES-BOOT; {} has this kernel's system: unplug the others so that updates and blessing find this one",
                            candidates.len(),
                            partition.display()
                        ),
                    );
                }
                return Ok(line);
            }
            Err(e) => why.push(e),
        }
    }
    Err(why.join("; "))
}

/// Mount slot `slot`'s image from the RUSHES-BOOT at `partition` on /usr, and keep it
/// only if it holds the modules of the kernel that is running.
fn attach_from(partition: &Path, slot: &str) -> Result<String, String> {
    let _ = std::fs::create_dir_all(ESP_MOUNT);
    // Read-write like every other mount of it (updates and blessing write to it): a
    // second mount of a FAT file system must agree with the first on that.
    rustix::mount::mount(
        partition,
        ESP_MOUNT,
        "vfat",
        rustix::mount::MountFlags::NOATIME,
        None,
    )
    .map_err(|e| format!("cannot mount {} (RUSHES-BOOT): {e}", partition.display()))?;
    let image = Path::new(ESP_MOUNT).join("rushes").join(slot).join(IMAGE);
    let result = (|| {
        let file = std::fs::File::open(&image).map_err(|e| {
            format!(
                "cannot open {IMAGE} of slot {slot} on {}: {e}",
                partition.display()
            )
        })?;
        // Held open until the mount has it: the loop device lets go of the image when
        // its last user closes it.
        let (device, _held) = loop_attach(&file)
            .map_err(|e| format!("cannot attach {IMAGE} to a loop device: {e}"))?;
        rustix::mount::mount(
            &device,
            "/usr",
            "squashfs",
            rustix::mount::MountFlags::RDONLY | rustix::mount::MountFlags::NODEV,
            None,
        )
        .map_err(|e| {
            format!(
                "cannot mount {IMAGE} of slot {slot} on {}: {e} (an image cut short or damaged reads this way)",
                partition.display()
            )
        })?;
        let release = rustix::system::uname()
            .release()
            .to_string_lossy()
            .into_owned();
        if !Path::new("/usr/lib/modules").join(&release).is_dir() {
            let _ = rustix::mount::unmount("/usr", rustix::mount::UnmountFlags::DETACH);
            return Err(format!(
                "{IMAGE} of slot {slot} on {} is not for the running kernel {release}",
                partition.display()
            ));
        }
        Ok(format!(
            "/usr is slot {slot}'s {IMAGE} on {} ({})",
            partition.display(),
            device.display()
        ))
    })();
    // The loop device holds the image open, and with it RUSHES-BOOT's file system, which
    // stays mounted (read-write, unwritten) until shutdown: only its mount point goes,
    // so that services do not see the stick.
    let _ = rustix::mount::unmount(ESP_MOUNT, rustix::mount::UnmountFlags::DETACH);
    result
}

/// The device nodes of the partitions named `name`, once the kernel has found one.
fn wait_for_partitions(ring: &mut Ring, name: &str) -> Result<Vec<PathBuf>, String> {
    let deadline = Instant::now() + STICK_WAIT;
    let mut told = false;
    let started = Instant::now();
    loop {
        let found: Vec<PathBuf> = partitions_named(Path::new("/sys/class/block"), name)
            .into_iter()
            .map(|dev| Path::new("/dev").join(dev))
            .filter(|node| node.exists())
            .collect();
        if !found.is_empty() {
            return Ok(found);
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "no partition {name} appeared in {} s: the stick was pulled, or its controller has no driver in this image",
                STICK_WAIT.as_secs()
            ));
        }
        if !told && started.elapsed() >= Duration::from_secs(5) {
            told = true;
            let line = format!("rushes: waiting for the boot stick ({name})");
            console(&line);
            ring.push("init", &line);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The kernel names (`sda1`) of the partitions whose GPT name is `name`, sorted, from the
/// `PARTNAME=` line of each `uevent` under `class_block` (/sys/class/block).
pub fn partitions_named(class_block: &Path, name: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(class_block) else {
        return Vec::new();
    };
    let mut found: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let text = std::fs::read_to_string(e.path().join("uevent")).ok()?;
            text.lines()
                .any(|l| l.strip_prefix("PARTNAME=") == Some(name))
                .then(|| e.file_name().to_string_lossy().into_owned())
        })
        .collect();
    found.sort();
    found
}

/// `LOOP_CTL_GET_FREE` on /dev/loop-control: the number of a free loop device. Unlike
/// rustix's `NoArg`, it keeps the ioctl's return value.
struct GetFree;

// SAFETY: LOOP_CTL_GET_FREE takes no argument and returns the device number.
unsafe impl rustix::ioctl::Ioctl for GetFree {
    type Output = i32;
    const IS_MUTATING: bool = false;

    fn opcode(&self) -> rustix::ioctl::Opcode {
        linux_raw_sys::loop_device::LOOP_CTL_GET_FREE as rustix::ioctl::Opcode
    }

    fn as_ptr(&mut self) -> *mut core::ffi::c_void {
        core::ptr::null_mut()
    }

    unsafe fn output_from_ptr(
        out: rustix::ioctl::IoctlOutput,
        _: *mut core::ffi::c_void,
    ) -> rustix::io::Result<i32> {
        Ok(out)
    }
}

const LOOP_CONFIGURE: rustix::ioctl::Opcode =
    linux_raw_sys::loop_device::LOOP_CONFIGURE as rustix::ioctl::Opcode;

/// Attach `file` read-only to a free loop device, which lets go of it by itself once
/// nothing has the device open (`LO_FLAGS_AUTOCLEAR`); returns the device's node and
/// the device opened, which must stay open until something else (a mount) holds it.
fn loop_attach(file: &std::fs::File) -> std::io::Result<(PathBuf, std::fs::File)> {
    use linux_raw_sys::loop_device::{loop_config, LO_FLAGS_AUTOCLEAR, LO_FLAGS_READ_ONLY};
    let control = std::fs::File::open("/dev/loop-control")?;
    // A device another process took between the two calls answers EBUSY: ask again.
    for _ in 0..8 {
        // SAFETY: GetFree passes no pointer; the kernel only returns a number.
        let number = unsafe { rustix::ioctl::ioctl(&control, GetFree) }?;
        let node = PathBuf::from(format!("/dev/loop{number}"));
        let device = std::fs::OpenOptions::new().read(true).open(&node)?;
        // SAFETY: loop_config is plain old data from the kernel's headers; all zeroes
        // is its "nothing set" value.
        let mut config: loop_config = unsafe { core::mem::zeroed() };
        config.fd = u32::try_from(file.as_raw_fd()).map_err(std::io::Error::other)?;
        config.info.lo_flags = LO_FLAGS_READ_ONLY as u32 | LO_FLAGS_AUTOCLEAR as u32;
        let name = b"rushes-root";
        config.info.lo_file_name[..name.len()].copy_from_slice(name);
        // SAFETY: LOOP_CONFIGURE reads one `struct loop_config`, which `config` is, and
        // the descriptor in it stays open for the call.
        let configure =
            unsafe { rustix::ioctl::Setter::<LOOP_CONFIGURE, loop_config>::new(config) };
        // SAFETY: as above.
        match unsafe { rustix::ioctl::ioctl(&device, configure) } {
            Ok(()) => return Ok((node, device)),
            Err(rustix::io::Errno::BUSY) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(std::io::Error::other("every loop device was taken"))
}

/// At shutdown: let go of /usr once nothing uses it, so the loop device closes the
/// image and RUSHES-BOOT is unmounted cleanly.
pub fn release_usr() {
    if Path::new(BOOT_MODULES).exists() {
        let _ = rustix::mount::unmount("/usr", rustix::mount::UnmountFlags::DETACH);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_boot_partition_is_found_by_its_gpt_name() {
        let dir = tempfile::tempdir().unwrap();
        let put = |dev: &str, uevent: &str| {
            std::fs::create_dir_all(dir.path().join(dev)).unwrap();
            std::fs::write(dir.path().join(dev).join("uevent"), uevent).unwrap();
        };
        put("sda", "MAJOR=8\nMINOR=0\nDEVNAME=sda\nDEVTYPE=disk\n");
        put(
            "sdb2",
            "MAJOR=8\nMINOR=18\nDEVNAME=sdb2\nDEVTYPE=partition\nPARTN=2\nPARTNAME=RUSHES-CFG\n",
        );
        assert!(partitions_named(dir.path(), "RUSHES-BOOT").is_empty());
        put(
            "sdb1",
            "MAJOR=8\nMINOR=17\nDEVNAME=sdb1\nDEVTYPE=partition\nPARTN=1\nPARTNAME=RUSHES-BOOT\n",
        );
        assert_eq!(partitions_named(dir.path(), "RUSHES-BOOT"), ["sdb1"]);
        // A label that merely starts like it is another partition.
        put("sdc1", "PARTNAME=RUSHES-BOOTX\n");
        assert_eq!(partitions_named(dir.path(), "RUSHES-BOOT"), ["sdb1"]);
        // A second stick: both are candidates, in name order.
        put("nvme0n1p1", "PARTNAME=RUSHES-BOOT\n");
        assert_eq!(
            partitions_named(dir.path(), "RUSHES-BOOT"),
            ["nvme0n1p1", "sdb1"]
        );
    }
}
