//! A pipelined NFSv3 client for benchmarks: keeps up to `depth` calls in flight on one
//! TCP connection, which libnfs' `nfs-cp` (one call at a time) cannot.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use nfs3_client::nfs3_types::nfs3::{self as t, nfs_fh3};
use nfs3_client::nfs3_types::xdr_codec::{Opaque, Pack, Unpack};

use crate::{read_reply, rpc_record, word, User};

/// One connection issuing NFSv3 calls.
pub struct Pipe {
    stream: TcpStream,
    next_xid: u32,
    user: User,
    program: u32,
    version: u32,
}

/// The results part of an accepted, successful RPC reply (after the RPC header).
fn results(reply: &[u8]) -> anyhow::Result<&[u8]> {
    anyhow::ensure!(
        reply.len() >= 24 && word(reply, 1) == 1 && word(reply, 2) == 0,
        "call was denied"
    );
    let verf_len = word(reply, 4) as usize;
    let at = 20 + verf_len.div_ceil(4) * 4;
    anyhow::ensure!(reply.len() >= at + 4, "short reply");
    let accept = u32::from_be_bytes(reply[at..at + 4].try_into()?);
    anyhow::ensure!(accept == 0, "call not accepted (accept_stat {accept})");
    Ok(&reply[at + 4..])
}

fn status(body: &[u8]) -> u32 {
    body.get(..4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .unwrap_or(u32::MAX)
}

pub fn pack<T: Pack>(v: &T) -> Vec<u8> {
    let mut out = Vec::new();
    v.pack(&mut out).expect("pack into a Vec");
    out
}

impl Pipe {
    pub fn connect(addr: SocketAddr, user: User) -> anyhow::Result<Self> {
        Self::from_stream(TcpStream::connect(addr)?, user)
    }

    /// Connect from the loopback address `source` (127.0.0.x), as another machine.
    pub fn connect_from(
        source: std::net::IpAddr,
        addr: SocketAddr,
        user: User,
    ) -> anyhow::Result<Self> {
        Self::from_stream(crate::rawrpc::tcp_from(source, addr)?, user)
    }

    fn from_stream(stream: TcpStream, user: User) -> anyhow::Result<Self> {
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(120)))?;
        Ok(Self {
            stream,
            next_xid: 1,
            user,
            program: 100003,
            version: 3,
        })
    }

    /// Call `program` `version` instead of NFSv3 (NLM v4 is 100021, 4).
    pub fn for_program(mut self, program: u32, version: u32) -> Self {
        self.program = program;
        self.version = version;
        self
    }

    fn send(&mut self, procedure: u32, args: &[u8]) -> anyhow::Result<()> {
        let xid = self.next_xid;
        self.next_xid = self.next_xid.wrapping_add(1);
        self.send_xid(xid, procedure, args)
    }

    fn send_xid(&mut self, xid: u32, procedure: u32, args: &[u8]) -> anyhow::Result<()> {
        self.stream.write_all(&rpc_record(
            xid,
            self.program,
            self.version,
            procedure,
            Some(&self.user),
            args,
        ))?;
        Ok(())
    }

    /// One call sent twice with the same xid, the second time on `again` (another
    /// connection from this client), as a client retransmits a call whose reply was lost
    /// once it has reconnected; returns both replies' results.
    pub fn call_twice(
        &mut self,
        again: &mut Pipe,
        procedure: u32,
        args: &[u8],
    ) -> anyhow::Result<[Vec<u8>; 2]> {
        let xid = self.next_xid;
        self.next_xid = self.next_xid.wrapping_add(1);
        self.send_xid(xid, procedure, args)?;
        let first = results(&read_reply(&mut self.stream)?)?.to_vec();
        again.send_xid(xid, procedure, args)?;
        let second = results(&read_reply(&mut again.stream)?)?.to_vec();
        Ok([first, second])
    }

    /// Issue `total` calls built by `make(i)`, at most `depth` in flight, and hand each
    /// reply's results to `check`. Returns the elapsed time.
    pub fn run(
        &mut self,
        total: usize,
        depth: usize,
        mut make: impl FnMut(usize) -> (u32, Vec<u8>),
        mut check: impl FnMut(&[u8]) -> anyhow::Result<()>,
    ) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let (mut issued, mut done) = (0, 0);
        while done < total {
            while issued < total && issued - done < depth {
                let (procedure, args) = make(issued);
                self.send(procedure, &args)?;
                issued += 1;
            }
            let reply = read_reply(&mut self.stream)?;
            check(results(&reply)?)?;
            done += 1;
        }
        Ok(started.elapsed())
    }

    /// Keep `depth` calls built by `make(i)` in flight until `stop` is set, checking
    /// each reply is NFS3_OK; returns how many were answered. Replies are read on a
    /// thread of their own while calls are sent, as a kernel client does: a client that
    /// only reads between sends would stall a server sending it large replies while it
    /// sends large calls. The pipe takes no more replies afterwards. `answered` counts
    /// the replies as they come.
    pub fn keep_busy(
        &mut self,
        depth: usize,
        stop: &std::sync::atomic::AtomicBool,
        answered: &std::sync::atomic::AtomicUsize,
        mut make: impl FnMut(usize) -> (u32, Vec<u8>),
    ) -> anyhow::Result<usize> {
        let mut replies = self.stream.try_clone()?;
        let (replied, answers) = std::sync::mpsc::channel::<anyhow::Result<()>>();
        let reader = std::thread::spawn(move || loop {
            let reply = read_reply(&mut replies)
                .map_err(anyhow::Error::from)
                .and_then(|r| expect_ok(results(&r)?));
            let failed = reply.is_err();
            if replied.send(reply).is_err() || failed {
                return;
            }
        });
        let (mut issued, mut done) = (0, 0);
        let outcome = 'run: loop {
            let stopping = stop.load(std::sync::atomic::Ordering::Relaxed);
            while !stopping && issued - done < depth {
                let (procedure, args) = make(issued);
                if let Err(e) = self.send(procedure, &args) {
                    break 'run Err(e);
                }
                issued += 1;
            }
            if done == issued {
                break Ok(done);
            }
            match answers.recv() {
                Ok(Ok(())) => {
                    done += 1;
                    answered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                Ok(Err(e)) => break Err(e),
                Err(_) => break Err(anyhow::anyhow!("the reply reader stopped")),
            }
        };
        // The reader is waiting for a reply that will not come: stop it.
        let _ = self.stream.shutdown(std::net::Shutdown::Read);
        let _ = reader.join();
        outcome
    }

    /// One call, waited for; returns its results.
    pub fn call(&mut self, procedure: u32, args: &[u8]) -> anyhow::Result<Vec<u8>> {
        self.send(procedure, args)?;
        let reply = read_reply(&mut self.stream)?;
        Ok(results(&reply)?.to_vec())
    }
}

/// The median of a repetition's figures (the upper one of an even count).
pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Fail unless the NFS status word of `body` is NFS3_OK.
pub fn expect_ok(body: &[u8]) -> anyhow::Result<()> {
    let s = status(body);
    anyhow::ensure!(s == 0, "NFS error {s}");
    Ok(())
}

pub fn create_args(dir: &nfs_fh3, name: &str) -> Vec<u8> {
    pack(&t::CREATE3args {
        where_: crate::dirop(dir, name),
        how: t::createhow3::UNCHECKED(t::sattr3 {
            mode: t::set_mode3::Some(0o644),
            ..Default::default()
        }),
    })
}

/// The handle CREATE returned.
pub fn created_handle(body: &[u8]) -> anyhow::Result<nfs_fh3> {
    let (res, _) = t::Nfs3Result::<t::CREATE3resok, t::CREATE3resfail>::unpack(
        &mut std::io::Cursor::new(body),
    )?;
    match res {
        t::Nfs3Result::Ok(ok) => match ok.obj {
            t::post_op_fh3::Some(fh) => Ok(fh),
            t::post_op_fh3::None => anyhow::bail!("CREATE returned no handle"),
        },
        t::Nfs3Result::Err((s, _)) => anyhow::bail!("CREATE failed: {s:?}"),
    }
}

/// The handle LOOKUP returned.
pub fn looked_up_handle(body: &[u8]) -> anyhow::Result<nfs_fh3> {
    let (res, _) = t::Nfs3Result::<t::LOOKUP3resok, t::LOOKUP3resfail>::unpack(
        &mut std::io::Cursor::new(body),
    )?;
    match res {
        t::Nfs3Result::Ok(ok) => Ok(ok.object),
        t::Nfs3Result::Err((s, _)) => anyhow::bail!("LOOKUP failed: {s:?}"),
    }
}

pub fn write_args(fh: &nfs_fh3, offset: u64, data: &[u8]) -> Vec<u8> {
    pack(&t::WRITE3args {
        file: fh.clone(),
        offset,
        count: data.len() as u32,
        stable: t::stable_how::UNSTABLE,
        data: Opaque::borrowed(data),
    })
}

pub fn read_args(fh: &nfs_fh3, offset: u64, count: u32) -> Vec<u8> {
    pack(&t::READ3args {
        file: fh.clone(),
        offset,
        count,
    })
}

pub fn commit_args(fh: &nfs_fh3) -> Vec<u8> {
    pack(&t::COMMIT3args {
        file: fh.clone(),
        offset: 0,
        count: 0,
    })
}

pub fn lookup_args(dir: &nfs_fh3, name: &str) -> Vec<u8> {
    pack(&t::LOOKUP3args {
        what: crate::dirop(dir, name),
    })
}

pub fn remove_args(dir: &nfs_fh3, name: &str) -> Vec<u8> {
    pack(&t::REMOVE3args {
        object: crate::dirop(dir, name),
    })
}

pub fn mkdir_args(dir: &nfs_fh3, name: &str) -> Vec<u8> {
    pack(&t::MKDIR3args {
        where_: crate::dirop(dir, name),
        attributes: t::sattr3 {
            mode: t::set_mode3::Some(0o755),
            ..Default::default()
        },
    })
}

/// List `dir` with READDIRPLUS, `maxcount` bytes a reply; returns the number of entries.
pub fn list_plus(pipe: &mut Pipe, dir: &nfs_fh3, maxcount: u32) -> anyhow::Result<usize> {
    let (mut cookie, mut verf, mut n) = (0, t::cookieverf3::default(), 0);
    loop {
        let args = pack(&t::READDIRPLUS3args {
            dir: dir.clone(),
            cookie,
            cookieverf: verf,
            dircount: maxcount,
            maxcount,
        });
        let body = pipe.call(17, &args)?;
        let (res, _) = t::Nfs3Result::<t::READDIRPLUS3resok<'_>, t::READDIRPLUS3resfail>::unpack(
            &mut std::io::Cursor::new(&body[..]),
        )?;
        let ok = match res {
            t::Nfs3Result::Ok(ok) => ok,
            t::Nfs3Result::Err((s, _)) => anyhow::bail!("READDIRPLUS failed: {s:?}"),
        };
        verf = ok.cookieverf;
        for e in &ok.reply.entries.0 {
            cookie = e.cookie;
            n += 1;
        }
        if ok.reply.eof {
            return Ok(n);
        }
    }
}

/// Wait for a job of the management API to end well (a bench's step; errors say which).
pub fn wait_job(api: &rushes_api::Client, job: rushes_api::Job) -> anyhow::Result<rushes_api::Job> {
    use rushes_api::JobState;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1800);
    loop {
        let now: rushes_api::Job = api
            .get(&format!("/v1/jobs/{}", job.id))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        match now.state {
            JobState::Done => return Ok(now),
            JobState::Failed | JobState::Cancelled => {
                anyhow::bail!("job {} ({}) failed: {:?}", now.id, now.kind, now.error)
            }
            _ if std::time::Instant::now() > deadline => {
                anyhow::bail!("job {} never ended", now.id)
            }
            _ => std::thread::sleep(std::time::Duration::from_millis(20)),
        }
    }
}

/// Empty the page cache (root only; a no-op otherwise), so a timed read goes to disk.
pub fn drop_caches() {
    let _ = std::fs::write("/proc/sys/vm/drop_caches", "3");
}

/// Target `name` set to the folder `path` through the management API.
pub fn set_folder_target(
    api: &rushes_api::Client,
    name: &str,
    path: &std::path::Path,
) -> anyhow::Result<()> {
    api.send(
        "PUT",
        &format!("/v1/targets/{name}"),
        Some(&rushes_api::SetTarget {
            terms: Default::default(),
            place: rushes_api::TargetPlace::Folder {
                path: path.display().to_string(),
            },
            secret: None,
        }),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))
}

/// Target `name` set through the management API to bucket `name` of the `s3-target`
/// on loopback port `port` (its key and secret).
pub fn set_s3_target(api: &rushes_api::Client, name: &str, port: u16) -> anyhow::Result<()> {
    api.send(
        "PUT",
        &format!("/v1/targets/{name}"),
        Some(&rushes_api::SetTarget {
            terms: Default::default(),
            place: rushes_api::TargetPlace::S3 {
                bucket: name.into(),
                endpoint: Some(format!("http://127.0.0.1:{port}")),
                region: "us-east-1".into(),
                access_key: "AK".into(),
                fingerprint: None,
            },
            secret: Some("secret".into()),
        }),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))
}
