use super::*;
use futures_lite::future::poll_fn;
use glommio::LocalExecutorBuilder;
use std::future::Future;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

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

async fn ready(reg: &Registration) {
    poll_fn(|cx| reg.poll_ready(cx)).await
}

/// Ready within `d`, or false.
async fn ready_within(reg: &Registration, d: Duration) -> bool {
    let timeout = glommio::timer::sleep(d);
    futures_lite::future::or(
        async {
            ready(reg).await;
            true
        },
        async {
            timeout.await;
            false
        },
    )
    .await
}

#[test]
fn a_parked_reader_wakes_when_data_arrives_and_not_before() {
    run(|p| async move {
        let (mut a, b) = UnixStream::pair().expect("pair");
        a.set_nonblocking(true).expect("nonblocking");
        let reg = p.register(&a).expect("register");
        // Freshly registered: ready at once (data may already be there).
        assert!(ready_within(&reg, Duration::ZERO).await);
        assert!(
            !ready_within(&reg, Duration::from_millis(20)).await,
            "ready with no data"
        );
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            let mut b = b;
            b.write_all(b"hello").expect("write");
            b
        });
        let t0 = Instant::now();
        // Nothing else runs on this executor: it must park on the epoll fd and wake.
        assert!(
            ready_within(&reg, Duration::from_secs(10)).await,
            "no wake-up"
        );
        assert!(
            t0.elapsed() >= Duration::from_millis(25),
            "woke before the data came"
        );
        let mut buf = [0u8; 16];
        assert_eq!(a.read(&mut buf).expect("read"), 5);
        drop(writer.join());
    });
}

#[test]
fn many_readers_each_get_every_reply() {
    // 50 socket pairs, 200 rounds: a writer thread answers each byte it reads; every
    // reader must see all its replies (a lost wake-up would time out here).
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
                        assert!(
                            ready_within(&reg, Duration::from_secs(10)).await,
                            "no wake-up for a reply"
                        );
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
    });
}

#[test]
fn set_ready_makes_the_next_look_ready_without_an_event() {
    run(|p| async move {
        let (a, _b) = UnixStream::pair().expect("pair");
        let reg = p.register(&a).expect("register");
        ready(&reg).await;
        assert!(!ready_within(&reg, Duration::from_millis(5)).await);
        reg.set_ready();
        assert!(ready_within(&reg, Duration::ZERO).await);
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
        ready(&r2).await;
        d.write_all(b"x").expect("write");
        assert!(ready_within(&r2, Duration::from_secs(10)).await);
    });
}

#[test]
fn data_and_a_hang_up_in_one_event_leave_the_end_readable() {
    run(|p| async move {
        let (mut a, mut b) = UnixStream::pair().expect("pair");
        a.set_nonblocking(true).expect("nonblocking");
        let reg = p.register(&a).expect("register");
        ready(&reg).await;
        // Both arrive before the driver looks (nothing awaits in between): one event.
        b.write_all(b"stats\n").expect("write");
        b.shutdown(std::net::Shutdown::Write).expect("shutdown");
        assert!(ready_within(&reg, Duration::from_secs(10)).await);
        let mut buf = [0u8; 64];
        assert_eq!(a.read(&mut buf).expect("read the data"), 6);
        // The read that took the data did not see the end: the next look must not wait
        // for an event that will never come (a client like `nc` then waits forever).
        assert!(ready_within(&reg, Duration::from_millis(500)).await, "the hang-up was lost");
        assert_eq!(a.read(&mut buf).expect("read the end"), 0);
    });
}

#[test]
fn others_woken_counts_owners_woken_for_data_until_they_look() {
    run(|p| async move {
        let (a, mut a_peer) = UnixStream::pair().expect("pair");
        let (b, mut b_peer) = UnixStream::pair().expect("pair");
        let ra = Rc::new(p.register(&a).expect("register"));
        let rb = Rc::new(p.register(&b).expect("register"));
        // Take the "fresh registration" readiness, so both owners wait for data.
        ready(&ra).await;
        ready(&rb).await;
        assert!(!p.others_woken());
        // The registrations outlive the tasks: looking, not dropping, must uncount them.
        let (pa, pb, ra2, rb2) = (p.clone(), p.clone(), ra.clone(), rb.clone());
        let wa = glommio::spawn_local(async move { ready(&ra2).await; pa.others_woken() });
        let wb = glommio::spawn_local(async move { ready(&rb2).await; pb.others_woken() });
        glommio::timer::sleep(Duration::from_millis(20)).await;
        assert!(!p.others_woken(), "nothing came yet");
        a_peer.write_all(b"x").expect("write");
        b_peer.write_all(b"y").expect("write");
        // Both woken in one look; whichever runs first still sees the other pending.
        let seen = [wa.await, wb.await];
        assert!(seen.contains(&true), "the first to run saw the other woken: {seen:?}");
        assert!(!p.others_woken(), "both have looked");
        // A woken owner that is dropped before it looks leaves the count too.
        let (c, mut c_peer) = UnixStream::pair().expect("pair");
        let rc = Rc::new(p.register(&c).expect("register"));
        ready(&rc).await;
        let rc2 = rc.clone();
        let waiter = glommio::spawn_local(async move { ready(&rc2).await });
        glommio::timer::sleep(Duration::from_millis(5)).await;
        c_peer.write_all(b"z").expect("write");
        drop(waiter); // cancels the task; its registration goes with `rc`
        glommio::timer::sleep(Duration::from_millis(20)).await;
        drop(rc);
        assert!(!p.others_woken(), "a dropped registration is not counted");
    });
}
