//! `rushes-bundle`: make signing keys, make signed update bundles from a built image's
//! kernel, initramfs and root image, and show what a bundle holds and whether a key trusts it.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use rushes_update::{PublicKey, SecretKey};

#[derive(Parser)]
#[command(
    name = "rushes-bundle",
    about = "Make signing keys and signed update bundles for Rushes boxes"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Make a signing key (KEY, mode 0600) and its public half (KEY.pub), which images
    /// built with `mkimage --trust KEY.pub` accept bundles from. Refuses to overwrite.
    Keygen { key: PathBuf },
    /// Sign a bundle of a kernel, an initramfs and a root image (as `mkimage` leaves
    /// them in out/build).
    Make {
        /// The signing key (from `keygen`).
        #[arg(long)]
        key: PathBuf,
        /// The version boxes will run (MAJOR.MINOR.PATCH).
        #[arg(long)]
        version: String,
        /// The oldest version this bundle may be applied on.
        #[arg(long)]
        min_version: String,
        #[arg(long, default_value = "out/build/vmlinuz")]
        kernel: PathBuf,
        #[arg(long, default_value = "out/build/initrd.zst")]
        initrd: PathBuf,
        /// The root image (`/usr` as squashfs) the initramfs mounts.
        #[arg(long, default_value = "out/build/root.sqfs")]
        root_image: PathBuf,
        /// Where the bundle goes.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Show a bundle's manifest and check its signature against public keys.
    Inspect {
        bundle: PathBuf,
        /// Public keys (KEY.pub) to check the signature with.
        #[arg(long = "trust")]
        trust: Vec<PathBuf>,
    },
}

fn main() -> Result<()> {
    match Args::parse().command {
        Command::Keygen { key } => {
            use std::os::unix::fs::OpenOptionsExt;
            let public = key.with_extension("pub");
            if key.exists() || public.exists() {
                bail!(
                    "{} or its .pub already exists: not overwriting a key",
                    key.display()
                );
            }
            if let Some(dir) = key.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            let secret = SecretKey::generate()?;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&key)
                .and_then(|mut f| f.write_all(secret.to_line().as_bytes()))
                .with_context(|| format!("cannot write {}", key.display()))?;
            std::fs::write(&public, secret.public().to_line())?;
            eprintln!(
                "key {} (fingerprint {}), public half {}",
                key.display(),
                secret.public().fingerprint(),
                public.display()
            );
        }
        Command::Make {
            key,
            version,
            min_version,
            kernel,
            initrd,
            root_image,
            output,
        } => {
            let text = std::fs::read_to_string(&key)
                .with_context(|| format!("cannot read the signing key {}", key.display()))?;
            let secret = SecretKey::parse(&text).with_context(|| {
                format!(
                    "{} is not a signing key from `rushes-bundle keygen`",
                    key.display()
                )
            })?;
            let tmp = output.with_extension("partial");
            let mut out = std::io::BufWriter::new(
                std::fs::File::create(&tmp)
                    .with_context(|| format!("cannot create {}", tmp.display()))?,
            );
            let created = std::process::Command::new("date")
                .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .unwrap_or_default();
            let manifest = rushes_update::make(
                &mut out,
                &secret,
                &version,
                &min_version,
                &created,
                &[&kernel, &initrd, &root_image],
            )?;
            drop(out);
            std::fs::rename(&tmp, &output)?;
            eprintln!(
                "{}: version {} (from {} on), {:.1} MiB, signed by {}",
                output.display(),
                manifest.version,
                manifest.min_version,
                manifest.payload_bytes() as f64 / (1u64 << 20) as f64,
                secret.public().fingerprint()
            );
        }
        Command::Inspect { bundle, trust } => {
            let mut f = std::io::BufReader::new(
                std::fs::File::open(&bundle)
                    .with_context(|| format!("cannot open {}", bundle.display()))?,
            );
            let raw = rushes_update::read_header(&mut f)?;
            let mut stdout = std::io::stdout().lock();
            writeln!(stdout, "format {}", raw.format)?;
            stdout.write_all(&raw.manifest)?;
            let mut keys = Vec::new();
            for path in &trust {
                let text = std::fs::read_to_string(path)?;
                keys.push(
                    PublicKey::parse(&text)
                        .with_context(|| format!("{} is not a public key", path.display()))?,
                );
            }
            if !keys.is_empty() {
                // Any version satisfies the base check here: only the signature is asked.
                match raw.check(&keys, "999999.0.0") {
                    Ok(c) => writeln!(stdout, "signature good, by {}", c.signer)?,
                    Err(e) => bail!("{e}"),
                }
            }
        }
    }
    Ok(())
}
