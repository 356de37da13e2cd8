//! One HTTP/1 connection: hyper from the first byte of a request to the
//! end of its response (and of any pipelined behind it), and between
//! requests only the stream and a timer entry.
//!
//! hyper's connection holds some 16 KiB of buffers (an 8 KiB read buffer
//! from its first read, an 8 KiB head buffer for writing) for as long as
//! it lives, and a keep-alive connection lives while it is idle. So the
//! stream ([`HyperIo`]) tells hyper its input ended when every request
//! that arrived has been answered and sent and no byte has come for a
//! while (half a second to a second: a busy connection keeps hyper from
//! one request to the next); hyper's connection then ends and frees
//! everything, and [`H1Conn`] waits for the next request's first bytes
//! before it starts another. A written-out
//! future rather than an `async fn`, whose state would reserve room for
//! every value it holds at any point (and hold its arguments twice).

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::rt::{Sleep, Timer};
use hyper::server::conn::http1::Builder;

use super::{ConnInfo, LoggedBody, Upgraded};
use crate::rt::{HyperIo, ReactorTimer};

/// hyper's HTTP/1 connection, running: when it ends, the stream and the
/// bytes hyper read and did not parse.
type Serving = Pin<Box<dyn Future<Output = Result<(HyperIo, Bytes), hyper::Error>>>>;

/// The HTTP/1 side of a connection, as a task. A request head must start
/// and end within `header_timeout` of the connection's start or of the
/// previous response's end (hyper's own header timer, which starts at the
/// head's first byte, may come later).
pub(super) struct H1Conn<S> {
    builder: Rc<Builder>,
    timer: ReactorTimer,
    header_timeout: Duration,
    svc: S,
    info: Rc<ConnInfo>,
    state: State,
}

enum State {
    /// Between requests: the stream and the head deadline.
    Waiting {
        io: HyperIo,
        sleep: Pin<Box<dyn Sleep>>,
    },
    /// hyper is serving. The head deadline runs until the service has
    /// been handed a request beyond the first `heads` (`timing`); the sleep
    /// is kept after that, to time the next wait without allocating.
    Serving {
        serving: Serving,
        sleep: Pin<Box<dyn Sleep>>,
        timing: bool,
        heads: u64,
    },
    Done,
}

impl<S> H1Conn<S>
where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = LoggedBody> + Clone + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::Future: 'static,
{
    pub(super) fn new(
        builder: Rc<Builder>,
        timer: ReactorTimer,
        header_timeout: Duration,
        svc: S,
        info: Rc<ConnInfo>,
        io: HyperIo,
    ) -> H1Conn<S> {
        let sleep = Timer::sleep(&timer, header_timeout);
        H1Conn {
            builder,
            timer,
            header_timeout,
            svc,
            info,
            state: State::Waiting { io, sleep },
        }
    }

    /// hyper's connection on `io`, boxed.
    fn start_hyper(&self, io: HyperIo) -> Serving {
        let conn = self
            .builder
            .serve_connection(io, self.svc.clone())
            .without_shutdown();
        Box::pin(async move { conn.await.map(|p| (p.io, p.read_buf)) })
    }

    /// hyper's connection ended with `io` handed back: wait for the next
    /// request if it ended because it was idle, hand the stream over if a
    /// response upgraded it, close otherwise.
    fn hyper_ended(
        &mut self,
        mut io: HyperIo,
        read_buf: Bytes,
        mut sleep: Pin<Box<dyn Sleep>>,
    ) -> Poll<()> {
        if self.info.upgraded.get() {
            let f = self.info.upgrade.borrow_mut().take();
            if let Some(f) = f {
                // The connection is no longer HTTP: its new owner decides
                // when it is idle.
                self.info.stop_watching();
                f(Upgraded {
                    stream: io.into_stream(),
                    read_buf,
                });
                return Poll::Ready(());
            }
        }
        let Some(idle_since) = io.take_released() else {
            return close(&io);
        };
        io.unread(&read_buf);
        // Counted from the previous response's end, not from now.
        let deadline = idle_since.unwrap_or_else(|| Timer::now(&self.timer)) + self.header_timeout;
        self.timer.reset(&mut sleep, deadline);
        self.state = State::Waiting { io, sleep };
        Poll::Pending
    }
}

/// Closes after what is unsent: the idle watchdog stays until the
/// connection is gone, so a peer that never reads cannot keep it.
fn close(io: &HyperIo) -> Poll<()> {
    io.transport().lose_connection();
    Poll::Ready(())
}

impl<S> Future for H1Conn<S>
where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = LoggedBody>
        + Clone
        + Unpin
        + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::Future: 'static,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        loop {
            match std::mem::replace(&mut this.state, State::Done) {
                State::Waiting { mut io, mut sleep } => match io.poll_next_request(cx) {
                    Poll::Ready(Ok(true)) => {
                        let heads = this.info.exchanges.started.get();
                        this.state = State::Serving {
                            serving: this.start_hyper(io),
                            sleep,
                            timing: true,
                            heads,
                        };
                    }
                    Poll::Ready(_) => return close(&io),
                    Poll::Pending => {
                        if sleep.as_mut().poll(cx).is_ready() {
                            tracing::debug!(peer = %this.info.peer, "no request in time: closing");
                            return close(&io);
                        }
                        this.state = State::Waiting { io, sleep };
                        return Poll::Pending;
                    }
                },
                State::Serving {
                    mut serving,
                    mut sleep,
                    mut timing,
                    heads,
                } => match serving.as_mut().poll(cx) {
                    Poll::Ready(Ok((io, read_buf))) => {
                        drop(serving);
                        if this.hyper_ended(io, read_buf, sleep).is_ready() {
                            return Poll::Ready(());
                        }
                    }
                    Poll::Ready(Err(e)) => {
                        tracing::debug!(error = %e, "HTTP connection ended with an error");
                        // hyper dropped the stream, which closes it.
                        return Poll::Ready(());
                    }
                    Poll::Pending => {
                        if timing && this.info.exchanges.started.get() != heads {
                            // A head arrived in time: hyper times the rest.
                            timing = false;
                            this.timer.disarm(&mut sleep);
                        }
                        if timing && sleep.as_mut().poll(cx).is_ready() {
                            tracing::debug!(peer = %this.info.peer, "no request head in time: closing");
                            // Dropping hyper's connection drops the stream,
                            // which closes it.
                            return Poll::Ready(());
                        }
                        this.state = State::Serving {
                            serving,
                            sleep,
                            timing,
                            heads,
                        };
                        return Poll::Pending;
                    }
                },
                State::Done => return Poll::Ready(()),
            }
        }
    }
}
