//! The bench's own machinery: where the data goes, the server child process, CPU accounting
//! from /proc, the open-file limit, and percentiles.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Log lines of the server kept for a post-mortem (the last ones).
const LOG_KEEP: usize = 400;

// ---------------------------------------------------------------------------------------------
// Data directory

/// `$VIGIL_BENCH_DIR/vigil-bench-server`, else `$TMPDIR/vigil-bench-server`.
pub fn bench_dir() -> PathBuf {
    std::env::var_os("VIGIL_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join("vigil-bench-server")
}

pub struct FsInfo {
    pub name: String,
    pub describe: String,
    /// tmpfs, overlay or another filesystem where fsync figures mean nothing.
    pub fake: bool,
}

/// The filesystem type (statfs `f_type`) and the device it is mounted from (/proc/mounts), as
/// the store bench reports them.
pub fn describe_fs(dir: &Path) -> FsInfo {
    let st = rustix::fs::statfs(dir).unwrap_or_else(|e| panic!("statfs {}: {e}", dir.display()));
    #[allow(clippy::unnecessary_cast)]
    let magic = (st.f_type as i64 as u64) & 0xffff_ffff;
    let (name, fake) = match magic {
        0xEF53 => ("ext4", false),
        0x5846_5342 => ("xfs", false),
        0x9123_683E => ("btrfs", false),
        0x2FC1_2FC1 => ("zfs", false),
        0xF2F5_2010 => ("f2fs", false),
        0x0102_1994 => ("tmpfs", true),
        0x794C_7630 => ("overlay", true),
        0x8584_58F6 => ("ramfs", true),
        0x6969 => ("nfs", false),
        0x0102_1997 => ("9p", false),
        0x6573_5546 => ("fuse", false),
        _ => ("unknown", false),
    };
    let name = if name == "unknown" {
        format!("filesystem type {magic:#x}")
    } else {
        name.to_owned()
    };
    let real = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let mount = mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (dev, at) = (f.next()?, f.next()?);
            real.starts_with(at)
                .then(|| (at.len(), dev.to_owned(), at.to_owned()))
        })
        .max_by_key(|(len, _, _)| *len);
    let describe = match mount {
        Some((_, dev, at)) => format!("{name} on {dev}, mounted at {at}"),
        None => name.clone(),
    };
    FsInfo {
        name,
        describe,
        fake,
    }
}

/// Fails early, and says why, when the disk cannot hold what a run writes.
pub fn check_space(dir: &Path, need_bytes: u64) {
    let st = rustix::fs::statvfs(dir).unwrap_or_else(|e| panic!("statvfs {}: {e}", dir.display()));
    let avail = st.f_bavail.saturating_mul(st.f_frsize);
    assert!(
        avail >= need_bytes,
        "{} has {} MB free; this run needs about {} MB: set VIGIL_BENCH_DIR to a roomier disk",
        dir.display(),
        avail / 1_000_000,
        need_bytes / 1_000_000
    );
}

/// Makes the filesystem settle after a run's data is removed (the journal commit that frees
/// its blocks, with their discards), so that one run's clean-up does not stall the next one's
/// fsyncs.
pub fn settle(dir: &Path) {
    if let Ok(f) = std::fs::File::open(dir) {
        let _ = rustix::fs::syncfs(&f);
    }
}

/// The disk's own latency while a run goes on: a thread that writes 4 KiB and fdatasyncs it
/// every 100 ms in the server's filesystem, so that a slow PERSISTED can be told apart from a
/// slow disk (other jobs' writes share it).
pub struct DiskProbe {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Vec<u32>>,
}

impl DiskProbe {
    pub fn start(dir: &Path) -> Self {
        use std::io::Write as _;
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = Arc::new(AtomicBool::new(false));
        let path = dir.join("disk-probe");
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut f =
                std::fs::File::create(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let block = [0x5au8; 4096];
            let mut lat = Vec::new();
            let mut next = Instant::now();
            while !flag.load(Ordering::Relaxed) {
                let t = Instant::now();
                f.write_all(&block).expect("the disk probe writes");
                f.sync_data().expect("the disk probe syncs");
                lat.push(micros(t.elapsed()));
                next += Duration::from_millis(100);
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
            drop(f);
            let _ = std::fs::remove_file(&path);
            lat
        });
        Self { stop, thread }
    }

    /// Tells the probe to stop after its current round.
    pub fn stop_soon(self) -> Self {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self
    }

    /// Waits for the probe to stop; the latencies of its write + fdatasync, µs.
    pub fn join(self) -> Vec<u32> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

// ---------------------------------------------------------------------------------------------
// Open files

/// Raises this process's soft open-file limit to its hard limit (children inherit it); returns
/// the limit now in force.
pub fn raise_nofile() -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let lim = getrlimit(Resource::Nofile);
    // An unlimited hard limit still meets the kernel's nr_open; 1 Mi is its default.
    let want = lim.maximum.unwrap_or(1 << 20);
    if lim.current.is_some_and(|c| c < want) {
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(want),
                maximum: lim.maximum,
            },
        );
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

// ---------------------------------------------------------------------------------------------
// CPU

/// utime + stime of a process (all its threads), in clock ticks.
fn process_ticks(pid: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3; utime and stime are fields 14 and 15.
    let field = |n: usize| {
        fields
            .get(n - 3)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(14) + field(15)
}

/// The machine's busy ticks summed over its CPUs, and those spent in interrupts (the
/// loopback network's softirqs among them, which no process is charged for), from /proc/stat.
fn machine_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return (0, 0);
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let at = |i: usize| v.get(i).copied().unwrap_or(0);
    // user nice system idle iowait irq softirq steal (guest time is inside user already).
    let total: u64 = v.iter().take(8).sum();
    (total - at(3) - at(4), at(5) + at(6))
}

/// Resident memory (VmRSS) of a process now, in MB.
pub fn rss_mb(pid: u32) -> f64 {
    status_field(pid, "VmRSS:").map_or(0.0, |kb| kb / 1024.0)
}

/// A number field of `/proc/PID/status` (its first word: kB for the memory ones).
pub fn status_field(pid: u32, name: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
}

/// Peak resident memory (VmHWM) of a process ("self" for this one), in MB.
pub fn peak_rss_mb(pid: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// CPU counters at one instant.
#[derive(Debug, Clone, Copy)]
pub struct CpuSample {
    at: Instant,
    server: u64,
    bench: u64,
    busy: u64,
    irq: u64,
}

impl CpuSample {
    pub fn take(server_pid: u32) -> Self {
        let (busy, irq) = machine_ticks();
        Self {
            at: Instant::now(),
            server: process_ticks(&server_pid.to_string()),
            bench: process_ticks("self"),
            busy,
            irq,
        }
    }
}

/// CPU used between two samples, in cores (1.0 = one core busy all the time).
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuUse {
    pub server: f64,
    /// The bench process: load generators and readers.
    pub bench: f64,
    /// Interrupts and softirqs (the loopback network's receive path), charged to no process.
    pub irq: f64,
    /// Everything else on the machine (other users' jobs, the kernel's own threads).
    pub others: f64,
    pub cores: usize,
}

impl CpuUse {
    pub fn between(a: CpuSample, b: CpuSample, cores: usize) -> Self {
        let hz = rustix::param::clock_ticks_per_second() as f64;
        let secs = (b.at - a.at).as_secs_f64().max(1e-9);
        let cores_of = |ticks: u64| ticks as f64 / hz / secs;
        let server = cores_of(b.server.saturating_sub(a.server));
        let bench = cores_of(b.bench.saturating_sub(a.bench));
        let busy = cores_of(b.busy.saturating_sub(a.busy));
        let irq = cores_of(b.irq.saturating_sub(a.irq));
        Self {
            server,
            bench,
            irq,
            others: (busy - server - bench - irq).max(0.0),
            cores,
        }
    }

    /// "87% of a core (44% of 2)".
    pub fn server_text(&self) -> String {
        format!(
            "{:.0}% of a core ({:.0}% of {})",
            self.server * 100.0,
            self.server * 100.0 / self.cores as f64,
            self.cores
        )
    }

    pub fn line(&self) -> String {
        format!(
            "server CPU {}; load generator {:.0}% of a core; interrupts {:.0}%; other \
             processes {:.0}%",
            self.server_text(),
            self.bench * 100.0,
            self.irq * 100.0,
            self.others * 100.0
        )
    }
}

// ---------------------------------------------------------------------------------------------
// The server

/// A `vigil serve` child process on a fresh data directory; killed on drop.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    pub pid: u32,
    log: Arc<Mutex<Log>>,
    data_dir: PathBuf,
    /// From spawning the binary to its `listening on` line: the time to be ready to serve.
    pub ready: Duration,
}

#[derive(Default)]
struct Log {
    last: VecDeque<String>,
    warnings: u64,
    errors: u64,
}

impl Server {
    /// Starts `vigil serve --listen 127.0.0.1:0 --data-dir DIR --allow-anonymous` and waits
    /// for its `listening on ADDR` line.
    pub fn start(data_dir: &Path) -> Self {
        let _ = std::fs::remove_dir_all(data_dir);
        Self::start_keep(data_dir)
    }

    /// As `start`, on the data directory as it is (a restart: nothing is removed).
    pub fn start_keep(data_dir: &Path) -> Self {
        std::fs::create_dir_all(data_dir).unwrap_or_else(|e| panic!("{}: {e}", data_dir.display()));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vigil"));
        // The bench's settings only: nothing from the environment it runs in, except RUST_LOG
        // (VIGIL_BENCH_RUST_LOG), to look inside the server.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("VIGIL_") {
                cmd.env_remove(&k);
            }
        }
        cmd.env_remove("RUST_LOG");
        if let Ok(filter) = std::env::var("VIGIL_BENCH_RUST_LOG") {
            cmd.env("RUST_LOG", filter);
        }
        let spawned = Instant::now();
        let mut child = cmd
            .args(["serve", "--listen", "127.0.0.1:0", "--allow-anonymous"])
            .arg("--data-dir")
            .arg(data_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting the vigil binary");
        let pid = child.id();
        let stderr = child.stderr.take().expect("the server's stderr");
        let log = Arc::new(Mutex::new(Log::default()));
        let (tx, rx) = mpsc::channel();
        {
            let log = log.clone();
            // Drains stderr so that the server never blocks on a full pipe.
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if line.contains("listening on ") {
                        let _ = tx.send(line.clone());
                    }
                    let mut l = log.lock().expect("the log lock");
                    if line.contains(" WARN ") {
                        l.warnings += 1;
                    }
                    if line.contains(" ERROR ") {
                        l.errors += 1;
                    }
                    if l.last.len() == LOG_KEEP {
                        l.last.pop_front();
                    }
                    l.last.push_back(line);
                }
            });
        }
        let mut server = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            pid,
            log,
            data_dir: data_dir.to_path_buf(),
            ready: Duration::ZERO,
        };
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => {
                server.ready = spawned.elapsed();
                server.addr = bound_address(&line);
                // Count only what the runs make the server log, not its start-up warnings
                // (--allow-anonymous, generated root credentials).
                let mut l = server.log.lock().expect("the log lock");
                l.warnings = 0;
                l.errors = 0;
            }
            Err(_) => panic!(
                "the server did not report its address; its log:\n{}",
                server.log_tail(50)
            ),
        }
        server
    }

    /// The last `n` lines the server logged.
    pub fn log_tail(&self, n: usize) -> String {
        let l = self.log.lock().expect("the log lock");
        let skip = l.last.len().saturating_sub(n);
        l.last
            .iter()
            .skip(skip)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// WARN and ERROR lines logged so far.
    pub fn log_counts(&self) -> (u64, u64) {
        let l = self.log.lock().expect("the log lock");
        (l.warnings, l.errors)
    }

    /// Stops the server (SIGTERM, then SIGKILL after 30 s), removes its data and lets the
    /// filesystem settle.
    pub fn stop(mut self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.pid as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() >= deadline => {
                    eprintln!("  (the server did not stop 30 s after SIGTERM: killing it)");
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        let _ = std::fs::remove_dir_all(&self.data_dir);
        settle(self.data_dir.parent().unwrap_or(&self.data_dir));
    }
}

impl Server {
    /// Kills the server with SIGKILL (a crash: nothing flushed, nothing closed) and reaps it;
    /// its data directory stays as the crash left it.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// ADDR from a log line "... listening on ADDR ...".
fn bound_address(line: &str) -> SocketAddr {
    let at = line.find("listening on ").expect("a listening line") + "listening on ".len();
    let addr = line[at..]
        .split(|c: char| c.is_whitespace() || c == '"')
        .next()
        .unwrap_or("");
    addr.parse()
        .unwrap_or_else(|e| panic!("bad address {addr:?} in {line:?}: {e}"))
}

// ---------------------------------------------------------------------------------------------
// Statistics

/// Nearest-rank quantile `q` of sorted values.
pub fn percentile(sorted: &[u32], q: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// p50, p99 and max of microsecond samples, in ms.
#[derive(Debug, Clone, Copy, Default)]
pub struct Quantiles {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
    pub n: usize,
}

impl Quantiles {
    pub fn of(mut us: Vec<u32>) -> Self {
        us.sort_unstable();
        let ms = |q| f64::from(percentile(&us, q)) / 1e3;
        Self {
            p50: ms(0.5),
            p99: ms(0.99),
            max: ms(1.0),
            n: us.len(),
        }
    }
}

/// Microseconds, saturating.
pub fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
