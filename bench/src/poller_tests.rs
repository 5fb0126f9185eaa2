use super::*;
use glommio::LocalExecutorBuilder;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

fn run<F: Future<Output = ()> + 'static>(f: impl FnOnce(Rc<Poller>) -> F + Send + 'static) {
    LocalExecutorBuilder::default()
        .spawn(move || async move {
            let p = Poller::new().expect("epoll");
            glommio::spawn_local(p.clone().drive()).detach();
            f(p).await;
        })
        .expect("executor")
        .join()
        .expect("test executor");
}

#[test]
fn a_parked_reader_wakes_when_data_arrives_and_not_before() {
    run(|p| async move {
        let (mut a, mut b) = UnixStream::pair().expect("pair");
        a.set_nonblocking(true).expect("nonblocking");
        let reg = p.register(&a).expect("register");
        // Freshly registered: the first wait does not block (data may already be there).
        assert!(reg.wait(None).await);
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            b.write_all(b"hello").expect("write");
            b
        });
        let t0 = Instant::now();
        assert!(reg.wait(None).await, "woken by data, not by a deadline");
        assert!(
            t0.elapsed() >= Duration::from_millis(25),
            "woke before the data came"
        );
        let mut buf = [0u8; 16];
        assert_eq!(a.read(&mut buf).expect("read"), 5);
        // While it waited, every live task was parked: the driver slept in epoll_wait
        // instead of spinning (a spin would be thousands of turns in 30 ms).
        assert!(p.blocked.get() >= 1);
        assert!(p.turns.get() < 200, "driver spun: {} turns", p.turns.get());
        drop(writer.join());
    });
}

#[test]
fn a_deadline_ends_the_wait_on_time() {
    run(|p| async move {
        let (a, _b) = UnixStream::pair().expect("pair");
        a.set_nonblocking(true).expect("nonblocking");
        let reg = p.register(&a).expect("register");
        assert!(reg.wait(None).await);
        for ms in [1u64, 5, 20] {
            let due = Instant::now() + Duration::from_millis(ms);
            assert!(!reg.wait(Some(due)).await, "no data: the deadline ends it");
            let late = Instant::now().saturating_duration_since(due);
            assert!(Instant::now() >= due, "woke early");
            // Generous: a shared CI machine can be slow to schedule us.
            assert!(late < Duration::from_millis(50), "woke {late:?} late");
        }
    });
}

#[test]
fn many_readers_each_get_every_reply() {
    // 50 socket pairs, 200 rounds: a writer thread answers each byte it reads; every
    // reader must see all its replies (a lost wake-up would hang or time out here).
    run(|p| async move {
        let mut ours = Vec::new();
        let mut theirs = Vec::new();
        for _ in 0..50 {
            let (a, b) = UnixStream::pair().expect("pair");
            a.set_nonblocking(true).expect("nonblocking");
            ours.push(a);
            theirs.push(b);
        }
        let echo = std::thread::spawn(move || {
            let mut buf = [0u8; 1];
            for _ in 0..200 {
                for s in theirs.iter_mut() {
                    s.read_exact(&mut buf).expect("read");
                    s.write_all(&buf).expect("write");
                }
            }
        });
        let mut tasks = Vec::new();
        for mut a in ours {
            let p = p.clone();
            tasks.push(glommio::spawn_local(async move {
                let reg = p.register(&a).expect("register");
                let mut got = 0;
                let mut buf = [0u8; 8];
                for _ in 0..200 {
                    a.write_all(b"x").expect("write");
                    loop {
                        let deadline = Instant::now() + Duration::from_secs(10);
                        assert!(reg.wait(Some(deadline)).await, "no wake-up for a reply");
                        match a.read(&mut buf) {
                            Ok(n) => {
                                got += n;
                                break;
                            }
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                            Err(e) => panic!("read: {e}"),
                        }
                    }
                }
                got
            }));
        }
        for t in tasks {
            assert_eq!(t.await, 200);
        }
        echo.join().expect("echo thread");
        assert_eq!(p.parked.get(), 0);
        assert_eq!(p.woken.get(), 0);
    });
}

#[test]
fn a_dropped_registration_frees_its_slot_for_the_next() {
    run(|p| async move {
        let (a, _b) = UnixStream::pair().expect("pair");
        let (c, mut d) = UnixStream::pair().expect("pair");
        let r1 = p.register(&a).expect("register");
        let t1 = r1.token;
        drop(r1);
        let r2 = p.register(&c).expect("register");
        assert_eq!(r2.token, t1);
        assert!(r2.wait(None).await);
        d.write_all(b"x").expect("write");
        assert!(r2.wait(Some(Instant::now() + Duration::from_secs(5))).await);
        assert_eq!(p.parked.get(), 0);
    });
}
