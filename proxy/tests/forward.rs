//! A port forward over real loopback TCP carrying 100 MB to a receiver
//! that reads slowly: the bytes arrive intact (hashes compared), the
//! sender's half-close reaches the receiver and the receiver's answer
//! comes back through it, and memory stays bounded (nothing holds the
//! 100 MB).

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use braid::aio::{Stream, TcpListener};
use braid::Reactor;
use braid_proxy::PortForward;
use futures_util::{AsyncReadExt, AsyncWriteExt};

const TOTAL: usize = 100 * 1024 * 1024;

fn fnv(h: &mut u64, bytes: &[u8]) {
    for &b in bytes {
        *h ^= u64::from(b);
        *h = h.wrapping_mul(0x100_0000_01b3);
    }
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn a_hundred_megabytes_through_a_forward_to_a_slow_reader() {
    let reactor = Reactor::new().unwrap();
    let before = peak_rss_kib();
    let target = TcpListener::bind(&reactor, "127.0.0.1:0".parse().unwrap()).unwrap();
    let target_addr = target.local_addr();
    let forward = PortForward::new(&reactor, "127.0.0.1", target_addr.port());
    let port = reactor
        .listen_tcp("127.0.0.1:0".parse().unwrap(), forward.factory())
        .unwrap();
    let front = port.local_addr();
    let r = reactor.clone();
    let received = Rc::new(Cell::new(0u64));
    let rec = received.clone();
    let (sent_hash, echoed) = reactor
        .block_on(async move {
            // The receiver: 16 KiB at a time with a pause between reads,
            // then its hash back once the sender's half-close arrives.
            let r2 = r.clone();
            let receiver = r.spawn_local(async move {
                let mut s: Stream = target.accept().await.unwrap();
                let mut h = 0xcbf2_9ce4_8422_2325u64;
                let mut buf = vec![0u8; 16 * 1024];
                let mut n = 0;
                loop {
                    let k = s.read(&mut buf).await.unwrap();
                    if k == 0 {
                        break;
                    }
                    fnv(&mut h, &buf[..k]);
                    n += k;
                    rec.set(n as u64);
                    if n % (1024 * 1024) < k {
                        r2.sleep(Duration::from_millis(2)).await;
                    }
                }
                s.write_all(format!("{n} {h:x}").as_bytes()).await.unwrap();
                s.close().await.unwrap();
            });
            let mut c = Stream::connect(&r, front).await.unwrap();
            let mut h = 0xcbf2_9ce4_8422_2325u64;
            let mut seed = 0x9e37_79b9_7f4a_7c15u64;
            let mut chunk = vec![0u8; 64 * 1024];
            let mut sent = 0;
            while sent < TOTAL {
                for b in chunk.chunks_mut(8) {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    b.copy_from_slice(&seed.to_le_bytes()[..b.len()]);
                }
                fnv(&mut h, &chunk);
                c.write_all(&chunk).await.unwrap();
                sent += chunk.len();
            }
            c.close().await.unwrap();
            let mut answer = String::new();
            c.read_to_string(&mut answer).await.unwrap();
            receiver.await.unwrap();
            (format!("{TOTAL} {h:x}"), answer)
        })
        .unwrap();
    assert_eq!(received.get(), TOTAL as u64);
    assert_eq!(
        echoed, sent_hash,
        "the receiver's count and hash, back through the half-closed forward"
    );
    let grew_mib = (peak_rss_kib() - before) / 1024;
    assert!(
        grew_mib < 40,
        "peak RSS grew by {grew_mib} MiB carrying 100 MiB"
    );
    assert_eq!(forward.active(), 0);
}
