//! Thread per core: one pinned thread and one glommio executor per generator thread,
//! each with its own connections and statistics; the main thread only merges.

use crate::config::{Settings, MAX_VALUE};
use crate::conn::{self, Shared};
use crate::ketama::Continuum;
use poller::Poller;
use crate::schedule::Schedule;
use crate::stats::{merge_histogram, new_histogram, Counters, ThreadStats};
use crate::workload::{partition_keys, Pattern, Workload};
use glommio::{LocalExecutorBuilder, Placement};
use hdrhistogram::Histogram;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::sync::{mpsc, Arc, Barrier, OnceLock};
use std::time::{Duration, Instant};

/// Time the connections get to connect before the load starts, so that the first
/// requests of an open-loop schedule are not late for want of a connection.
const CONNECT_AHEAD: Duration = Duration::from_millis(50);
/// Requests in flight per connection while preloading.
const PRELOAD_PIPELINE: usize = 32;

enum Msg {
    Tick {
        second: u64,
        hist: Box<Histogram<u64>>,
        counts: Counters,
    },
    Done(Box<ThreadOutcome>),
    Failed(String),
}

struct ThreadOutcome {
    stats: ThreadStats,
    preload: Counters,
    preload_samples: Vec<String>,
    last_reply: Option<Instant>,
}

/// One second of progress, all threads merged.
pub struct Tick {
    pub second: u64,
    pub warmup: bool,
    pub hist: Histogram<u64>,
    pub counts: Counters,
}

/// Everything measured, merged over threads.
pub struct RunResult {
    pub hist: Histogram<u64>,
    pub counts: Counters,
    pub samples: Vec<String>,
    pub preload: Counters,
    pub seconds: f64,
    pub send_lag: Histogram<u64>,
}

fn resolve(s: &Settings) -> Result<Vec<SocketAddr>, String> {
    s.servers
        .iter()
        .map(|sv| {
            (sv.host.as_str(), sv.port)
                .to_socket_addrs()
                .map_err(|e| format!("{}:{}: {e}", sv.host, sv.port))?
                .next()
                .ok_or_else(|| format!("{}:{}: no address", sv.host, sv.port))
        })
        .collect()
}

pub fn run(settings: Settings, mut progress: impl FnMut(&Tick)) -> Result<RunResult, String> {
    let addrs = resolve(&settings)?;
    // A server that is not there fails the run at once. Not under TLS: a bare connect
    // would count as a failed handshake in the server's stats (then connections that
    // cannot connect give up after CONNECT_GIVE_UP, with the error in the samples).
    for a in addrs.iter().filter(|_| settings.tls.is_none()) {
        std::net::TcpStream::connect_timeout(a, Duration::from_secs(2))
            .map_err(|e| format!("{a}: {e}"))?;
    }
    let continuum = Continuum::new(&settings.servers, settings.mode);
    let owned = partition_keys(settings.keys, &settings.key_prefix, &continuum, addrs.len());
    let settings = Arc::new(settings);
    let pattern = Arc::new(Pattern::new(MAX_VALUE));
    let threads = settings.threads;
    let barrier = Arc::new(Barrier::new(threads));
    let start_at: Arc<OnceLock<Instant>> = Arc::new(OnceLock::new());
    let (tx, rx) = mpsc::channel::<Msg>();
    let mut handles = Vec::new();
    for t in 0..threads {
        let cpu = settings.cpus[t % settings.cpus.len()];
        let (settings, pattern, owned, addrs) = (
            settings.clone(),
            pattern.clone(),
            owned.clone(),
            addrs.clone(),
        );
        let (barrier, start_at, tx) = (barrier.clone(), start_at.clone(), tx.clone());
        let h = std::thread::Builder::new()
            .name(format!("mcbench-{t}"))
            .spawn(move || {
                if !core_affinity::set_for_current(core_affinity::CoreId { id: cpu }) {
                    eprintln!("mcbench: thread {t}: could not pin to cpu {cpu}");
                }
                // Open-loop sends wake from timers, which the kernel may defer by the
                // thread's timer slack (50 us by default): ask for none.
                let _ = rustix::thread::set_current_timer_slack(std::num::NonZeroU64::new(1));
                let ex = LocalExecutorBuilder::new(Placement::Unbound)
                    .make()
                    .map_err(|e| format!("glommio executor: {e}"));
                let poller = Poller::new().map_err(|e| format!("epoll: {e}"));
                match ex.and_then(|ex| poller.map(|p| (ex, p))) {
                    Ok((ex, poller)) => {
                        let job = Job {
                            t,
                            settings,
                            pattern,
                            owned,
                            addrs,
                            barrier,
                            start_at,
                            tx,
                            poller,
                        };
                        ex.run(job.run());
                    }
                    Err(e) => {
                        let _ = tx.send(Msg::Failed(e));
                    }
                }
            })
            .map_err(|e| format!("thread: {e}"))?;
        handles.push(h);
    }
    drop(tx);

    let start = Instant::now();
    let mut pending: BTreeMap<u64, (usize, Tick)> = BTreeMap::new();
    let mut outcomes = Vec::new();
    let mut failed = None;
    // Every thread ends with Done or Failed (a panic hangs up its sender instead).
    while outcomes.len() + usize::from(failed.is_some()) < threads {
        let Ok(msg) = rx.recv() else { break };
        match msg {
            Msg::Tick {
                second,
                hist,
                counts,
            } => {
                let e = pending.entry(second).or_insert_with(|| {
                    let warmup = (second as f64) < settings.warmup;
                    (
                        0,
                        Tick {
                            second,
                            warmup,
                            hist: new_histogram(),
                            counts: Counters::default(),
                        },
                    )
                });
                e.0 += 1;
                merge_histogram(&mut e.1.hist, &hist);
                e.1.counts.add(&counts);
                if e.0 == threads {
                    if let Some((_, tick)) = pending.remove(&second) {
                        progress(&tick);
                    }
                }
            }
            Msg::Done(o) => outcomes.push(*o),
            Msg::Failed(e) => failed = Some(e),
        }
    }
    if let Some(e) = failed {
        // The other threads wait at the start barrier forever: nothing to join.
        return Err(e);
    }
    for h in handles {
        if h.join().is_err() {
            return Err("a generator thread panicked".into());
        }
    }
    if outcomes.len() != threads {
        return Err("a generator thread stopped early".into());
    }
    let mut r = RunResult {
        hist: new_histogram(),
        counts: Counters::default(),
        samples: Vec::new(),
        preload: Counters::default(),
        seconds: 0.0,
        send_lag: new_histogram(),
    };
    let mut last = None;
    for o in &outcomes {
        merge_histogram(&mut r.hist, &o.stats.total);
        merge_histogram(&mut r.send_lag, &o.stats.send_lag);
        r.counts.add(&o.stats.counts);
        r.preload.add(&o.preload);
        r.samples
            .extend(o.preload_samples.iter().map(|s| format!("preload {s}")));
        r.samples.extend(o.stats.samples.iter().cloned());
        last = last.max(o.last_reply);
    }
    let measure_start =
        start_at.get().copied().unwrap_or(start) + Duration::from_secs_f64(settings.warmup);
    r.seconds = match settings.duration {
        Some(d) => d,
        None => last.map_or(0.0, |l| {
            l.saturating_duration_since(measure_start).as_secs_f64()
        }),
    };
    Ok(r)
}

struct Job {
    t: usize,
    settings: Arc<Settings>,
    pattern: Arc<Pattern>,
    owned: Vec<Arc<Vec<u32>>>,
    addrs: Vec<SocketAddr>,
    barrier: Arc<Barrier>,
    start_at: Arc<OnceLock<Instant>>,
    tx: mpsc::Sender<Msg>,
    poller: Rc<Poller>,
}

impl Job {
    fn shared(
        &self,
        start: Instant,
        measure_start: Instant,
        end: Option<Instant>,
        quota: u64,
        pipeline: usize,
    ) -> Rc<Shared> {
        Rc::new(Shared {
            settings: self.settings.clone(),
            pattern: self.pattern.clone(),
            stats: RefCell::new(ThreadStats::default()),
            start,
            measure_start,
            end,
            quota: Cell::new(quota),
            pipeline,
            last_reply: Cell::new(None),
            poller: self.poller.clone(),
        })
    }

    async fn run(self) {
        let s = self.settings.clone();
        let (t, threads, conns) = (self.t, s.threads, s.connections);
        // Detached: it dies with the executor when this future returns.
        glommio::spawn_local(self.poller.clone().drive()).detach();

        // Preload: every key once, spread over all connections of all threads.
        let now = Instant::now();
        let pre = self.shared(now, now, None, u64::MAX, PRELOAD_PIPELINE);
        if s.preload {
            let mut tasks = Vec::new();
            for (sv, addr) in self.addrs.iter().enumerate() {
                for c in 0..conns {
                    let wl =
                        Workload::preload(self.owned[sv].clone(), t * conns + c, threads * conns);
                    tasks.push(glommio::spawn_local(conn::run(
                        pre.clone(),
                        *addr,
                        wl,
                        None,
                    )));
                }
            }
            for task in tasks {
                task.await;
            }
        }

        // Everyone starts together, after every thread's preload.
        if self.barrier.wait().is_leader() {
            let _ = self.start_at.set(Instant::now() + CONNECT_AHEAD);
        }
        self.barrier.wait();
        let start = self.start_at.get().copied().unwrap_or_else(Instant::now);
        let measure_start = start + Duration::from_secs_f64(s.warmup);
        let end = s
            .duration
            .map(|d| measure_start + Duration::from_secs_f64(d));
        // Requests due after warm-up, split over threads (warm-up ones come on top).
        let quota = match s.requests {
            Some(n) => n / threads as u64 + u64::from((t as u64) < n % threads as u64),
            None => u64::MAX,
        };
        let main = self.shared(start, measure_start, end, quota, s.pipeline);
        // Detached: it dies with the executor when this future returns.
        glommio::spawn_local(ticker(main.clone(), start, self.tx.clone())).detach();
        // The connections start now, connect, and send nothing before `start`.
        let total_conns = (threads * conns * self.addrs.len()) as f64;
        let mut tasks = Vec::new();
        for (sv, addr) in self.addrs.iter().enumerate() {
            for c in 0..conns {
                let id = ((t * self.addrs.len() + sv) * conns + c) as u64;
                let wl = Workload::new(
                    &s,
                    self.owned[sv].clone(),
                    0x9e37_79b9 ^ id.wrapping_mul(0x1000_0001),
                );
                let sched = s.rate.map(|r| {
                    Schedule::new(
                        start,
                        r / total_conns,
                        s.arrival,
                        id as f64 / total_conns,
                        id + 1,
                    )
                });
                tasks.push(glommio::spawn_local(conn::run(
                    main.clone(),
                    *addr,
                    wl,
                    sched,
                )));
            }
        }
        for task in tasks {
            task.await;
        }

        let stats = std::mem::take(&mut *main.stats.borrow_mut());
        let pre_stats = std::mem::take(&mut *pre.stats.borrow_mut());
        let outcome = ThreadOutcome {
            stats,
            preload: pre_stats.counts,
            preload_samples: pre_stats.samples,
            last_reply: main.last_reply.get(),
        };
        let _ = self.tx.send(Msg::Done(Box::new(outcome)));
    }
}

/// Sends this thread's interval histogram and counters to the main thread every second.
async fn ticker(shared: Rc<Shared>, start: Instant, tx: mpsc::Sender<Msg>) {
    let mut second = 0u64;
    loop {
        second += 1;
        let at = start + Duration::from_secs(second);
        glommio::timer::sleep(at.saturating_duration_since(Instant::now())).await;
        let (hist, counts) = {
            let mut st = shared.stats.borrow_mut();
            let h = st.interval.clone();
            st.interval.reset();
            (h, std::mem::take(&mut st.interval_counts))
        };
        if tx
            .send(Msg::Tick {
                second,
                hist: Box::new(hist),
                counts,
            })
            .is_err()
        {
            return;
        }
    }
}
