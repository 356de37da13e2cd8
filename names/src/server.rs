//! The DNS server's transports: UDP datagrams and TCP with two-byte
//! length frames (RFC 1035 4.2.2, RFC 7766), both answered by one
//! [`Authority`].

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use braid::aio::{Stream, StreamProtocol};
use braid::datagram::{DatagramPort, DatagramProtocol};
use braid::{Address, ListeningPort, Reactor};

use crate::authority::{Authority, Transport};

/// An authoritative DNS server over UDP and TCP.
///
/// ```
/// use braid_names::{Authority, DnsServer, Zone};
///
/// let zone = Zone::parse("example.test.", "$TTL 60\n@ IN SOA ns hostmaster 1 3600 600 86400 60\n@ IN A 192.0.2.1\n", None)?;
/// let reactor = braid::Reactor::new()?;
/// let server = DnsServer::new(&reactor, Authority::new().zone(zone));
/// let (udp, tcp) = server.listen("127.0.0.1:0".parse().unwrap())?;
/// // reactor.run() (or the GUI's own loop) now answers on udp.local_addr().
/// # let _ = (udp, tcp);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct DnsServer {
    reactor: Reactor,
    authority: Rc<Authority>,
    /// A TCP connection idle this long is closed (RFC 7766 6.2.3).
    idle: Duration,
}

struct Udp {
    authority: Rc<Authority>,
}

impl DatagramProtocol for Udp {
    fn datagram_received(&mut self, port: &DatagramPort, data: &[u8], from: &Address) {
        if let Some(answer) = self.authority.answer(data, Transport::Udp) {
            if let Err(e) = port.send_to(&answer, from) {
                tracing::debug!(error = %e, %from, "DNS answer not sent");
            }
        }
    }
}

impl DnsServer {
    /// A server answering from `authority`.
    pub fn new(reactor: &Reactor, authority: Authority) -> DnsServer {
        DnsServer {
            reactor: reactor.clone(),
            authority: Rc::new(authority),
            idle: Duration::from_secs(10),
        }
    }

    /// Listens on UDP and TCP at `addr` (port 0: one free port for both).
    ///
    /// # Errors
    ///
    /// A socket's error.
    pub fn listen(&self, addr: SocketAddr) -> io::Result<(DatagramPort, ListeningPort)> {
        let mut tries = 0;
        loop {
            let udp = self.reactor.listen_udp(
                addr,
                Udp {
                    authority: self.authority.clone(),
                },
            )?;
            let bound = match udp.local_addr() {
                Address::Tcp(a) => a,
                _ => addr,
            };
            let tcp = self.reactor.listen_tcp(bound, self.stream_factory());
            match tcp {
                Ok(tcp) => return Ok((udp, tcp)),
                // Port 0: the UDP port's number may be taken for TCP.
                Err(e) if addr.port() == 0 && tries < 20 => {
                    tries += 1;
                    udp.stop_listening();
                    tracing::debug!(error = %e, "TCP port taken; trying another");
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// A factory answering length-framed queries (RFC 7766) on any stream
    /// listener: TCP (what [`listen`](Self::listen) uses), a Unix socket,
    /// TLS for DNS over TLS (RFC 7858, with braid-tls), the in-memory
    /// pair. Pipelined queries are answered in order; a connection idle for
    /// 10 s is closed.
    pub fn stream_factory(&self) -> impl braid::Factory {
        let me = self.clone();
        move |_: &Address| {
            let me = me.clone();
            StreamProtocol::new(move |s| {
                let r = me.reactor.clone();
                drop(r.spawn_local(me.clone().serve_tcp(s)));
            })
        }
    }

    async fn serve_tcp(self, stream: Stream) {
        let mut buf: Vec<u8> = Vec::new();
        loop {
            // A whole frame: two length bytes and the message.
            while let Some(len) = frame_len(&buf) {
                let msg: Vec<u8> = buf.drain(..2 + len).skip(2).collect();
                if let Some(answer) = self.authority.answer(&msg, Transport::Tcp) {
                    let len = (answer.len() as u16).to_be_bytes();
                    if poll_fn(|cx| stream.poll_write_all(cx, &[&len, &answer]))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
            let read = poll_fn(|cx| {
                stream.poll_read_with(cx, 64 * 1024, |a, b| {
                    buf.extend_from_slice(a);
                    buf.extend_from_slice(b);
                })
            });
            match self.reactor.timeout(self.idle, read).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => {
                    stream.transport().lose_connection();
                    return;
                }
            }
        }
    }
}

/// The length of the first frame if it is all in `buf`. Frames are at most
/// 65,535 bytes, so `buf` never holds more than one frame and one read.
fn frame_len(buf: &[u8]) -> Option<usize> {
    let len = u16::from_be_bytes([*buf.first()?, *buf.get(1)?]) as usize;
    (buf.len() >= 2 + len).then_some(len)
}
