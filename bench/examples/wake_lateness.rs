//! How late a parked glommio executor wakes for a timer, against a plain thread sleeping
//! for the same time on the same (pinned) CPU. An open-loop generator and a server both
//! depend on prompt wake-ups. `cargo run --release -p mcbench --example wake_lateness -- CPU N US`

use std::time::{Duration, Instant};

fn pct(mut v: Vec<u64>) -> String {
    v.sort_unstable();
    let q = |p: f64| v[((v.len() as f64 - 1.0) * p) as usize];
    format!(
        "p50 {} us  p99 {} us  p99.9 {} us  max {} us",
        q(0.5),
        q(0.99),
        q(0.999),
        q(1.0)
    )
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let (cpu, n, us) = (
        args.first().copied().unwrap_or(1),
        args.get(1).copied().unwrap_or(2000),
        args.get(2).copied().unwrap_or(500),
    );
    let gap = Duration::from_micros(us);
    let t = std::thread::spawn(move || {
        core_affinity::set_for_current(core_affinity::CoreId { id: cpu as usize });
        let mut late = Vec::new();
        for _ in 0..n {
            let t0 = Instant::now();
            std::thread::sleep(gap);
            late.push((t0.elapsed().saturating_sub(gap)).as_micros() as u64);
        }
        late
    });
    println!("thread::sleep  {}", pct(t.join().unwrap_or_default()));
    let g = std::thread::spawn(move || {
        core_affinity::set_for_current(core_affinity::CoreId { id: cpu as usize });
        let ex = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .make()
            .ok()?;
        Some(ex.run(async move {
            let mut late = Vec::new();
            for _ in 0..n {
                let t0 = Instant::now();
                glommio::timer::sleep(gap).await;
                late.push((t0.elapsed().saturating_sub(gap)).as_micros() as u64);
            }
            late
        }))
    });
    match g.join().ok().flatten() {
        Some(v) => println!("glommio Timer  {}", pct(v)),
        None => println!("glommio executor failed"),
    }
    let other = if cpu == 0 { 1 } else { 0 };
    println!(
        "socket, blocking reader  {}",
        pct(socket_wake(cpu as usize, other, n, gap, false))
    );
    println!(
        "socket, glommio reader   {}",
        pct(socket_wake(cpu as usize, other, n, gap, true))
    );
}

/// Socket wake-up: a writer thread on another CPU sends 8-byte timestamps over loopback
/// TCP every `gap`; the reader (glommio, or a blocking thread) records send-to-read delay.
#[allow(dead_code)]
pub fn socket_wake(
    reader_cpu: usize,
    writer_cpu: usize,
    n: u64,
    gap: Duration,
    glommio_reader: bool,
) -> Vec<u64> {
    use std::io::{Read, Write};
    let listener = match std::net::TcpListener::bind("127.0.0.1:0") {
        Ok(l) => l,
        Err(_) => return Vec::new(),
    };
    let Ok(addr) = listener.local_addr() else {
        return Vec::new();
    };
    let base = Instant::now();
    let writer = std::thread::spawn(move || {
        core_affinity::set_for_current(core_affinity::CoreId { id: writer_cpu });
        let Ok((mut s, _)) = listener.accept() else {
            return;
        };
        let _ = s.set_nodelay(true);
        for _ in 0..n {
            std::thread::sleep(gap);
            let t = base.elapsed().as_nanos() as u64;
            if s.write_all(&t.to_le_bytes()).is_err() {
                return;
            }
        }
    });
    let reader = std::thread::spawn(move || -> Vec<u64> {
        core_affinity::set_for_current(core_affinity::CoreId { id: reader_cpu });
        let mut delays = Vec::new();
        if glommio_reader {
            let Ok(ex) = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound).make()
            else {
                return delays;
            };
            ex.run(async move {
                use futures_lite::AsyncReadExt;
                let Ok(mut s) = glommio::net::TcpStream::connect(addr).await else {
                    return delays;
                };
                let mut b = [0u8; 8];
                for _ in 0..n {
                    if s.read_exact(&mut b).await.is_err() {
                        break;
                    }
                    let now = base.elapsed().as_nanos() as u64;
                    delays.push((now.saturating_sub(u64::from_le_bytes(b))) / 1000);
                }
                delays
            })
        } else {
            let Ok(mut s) = std::net::TcpStream::connect(addr) else {
                return delays;
            };
            let mut b = [0u8; 8];
            for _ in 0..n {
                if s.read_exact(&mut b).is_err() {
                    break;
                }
                let now = base.elapsed().as_nanos() as u64;
                delays.push((now.saturating_sub(u64::from_le_bytes(b))) / 1000);
            }
            delays
        }
    });
    let v = reader.join().unwrap_or_default();
    let _ = writer.join();
    v
}
