//! Local mail into Maildirs, other domains into the relay queue: the
//! delivery `braid mail` runs.

use std::rc::Rc;

use crate::maildir::{Maildir, MaildirMessage};
use crate::queue::Queue;
use crate::reply::Reply;
use crate::server::{Delivery, Envelope, Message, SessionInfo};

/// Delivers to local domains through a [`Maildir`] and, for
/// authenticated users only, to other domains through a [`Queue`]
/// (without a queue, or without AUTH: `554 5.7.1 Relay access denied`,
/// as Postfix's `permit_sasl_authenticated, reject_unauth_destination`).
/// Bounces from the queue land in local senders' Maildirs, or go back
/// through the queue (with an empty sender) for remote ones.
#[derive(Debug, Clone)]
pub struct Router {
    maildir: Rc<Maildir>,
    queue: Option<Queue>,
    max_size: usize,
}

impl Router {
    /// Local delivery only.
    pub fn new(maildir: Maildir) -> Router {
        Router {
            maildir: Rc::new(maildir),
            queue: None,
            max_size: 10_240_000,
        }
    }

    /// Relays through `queue` (for authenticated senders) and takes its
    /// bounces.
    pub fn relay(mut self, queue: Queue) -> Router {
        let maildir = self.maildir.clone();
        let q = queue.clone();
        queue.on_bounce(Rc::new(move |sender: String, text: Vec<u8>| {
            let (maildir, q) = (maildir.clone(), q.clone());
            let reactor = maildir.reactor().clone();
            drop(reactor.spawn_local(async move {
                let r = if maildir.is_local(&sender) {
                    deliver_local(&maildir, &sender, &text).await
                } else {
                    q.enqueue("", vec![sender.clone()], text).await.map(|_| ())
                };
                if let Err(e) = r {
                    tracing::error!(sender, error = %e, "bounce not delivered");
                }
            }));
        }));
        self.queue = Some(queue);
        self
    }

    /// The largest message kept in memory for the queue (the session's
    /// `SIZE`; default 10,240,000).
    pub fn max_size(mut self, bytes: usize) -> Router {
        self.max_size = bytes;
        self
    }
}

async fn deliver_local(maildir: &Maildir, to: &str, text: &[u8]) -> Result<(), Reply> {
    let info = SessionInfo {
        peer: "127.0.0.1".into(),
        helo: Some("localhost".into()),
        ..SessionInfo::default()
    };
    let env = Envelope {
        from: String::new(),
        to: vec![to.to_owned()],
        ..Envelope::default()
    };
    let mut m = maildir.begin(&info, &env).await?;
    m.write(text).await?;
    m.commit().await.map(|_| ())
}

impl Delivery for Router {
    type Message = RouterMessage;

    async fn mail_from(&self, info: &SessionInfo, from: &str) -> Result<(), Reply> {
        self.maildir.mail_from(info, from).await
    }

    async fn rcpt_to(&self, info: &SessionInfo, env: &Envelope, to: &str) -> Result<(), Reply> {
        if self.maildir.is_local(to) {
            return self.maildir.rcpt_to(info, env, to).await;
        }
        match (&self.queue, &info.authenticated) {
            (Some(_), Some(_)) => Ok(()),
            _ => Err(Reply::new(
                554,
                [5, 7, 1],
                format!("<{to}>: Relay access denied"),
            )),
        }
    }

    async fn begin(&self, info: &SessionInfo, env: &Envelope) -> Result<RouterMessage, Reply> {
        let remote: Vec<String> = env
            .to
            .iter()
            .filter(|t| !self.maildir.is_local(t))
            .cloned()
            .collect();
        let local = if remote.len() < env.to.len() {
            Some(self.maildir.begin(info, env).await?)
        } else {
            None
        };
        let mut buf = Vec::new();
        if !remote.is_empty() {
            buf = self.maildir.received_header(info, None).into_bytes();
        }
        Ok(RouterMessage {
            local,
            queue: self.queue.clone().filter(|_| !remote.is_empty()),
            from: env.from.clone(),
            remote,
            buf,
            max: self.max_size + 64 * 1024,
        })
    }
}

/// A message on its way through a [`Router`].
#[derive(Debug)]
pub struct RouterMessage {
    local: Option<MaildirMessage>,
    queue: Option<Queue>,
    from: String,
    remote: Vec<String>,
    buf: Vec<u8>,
    max: usize,
}

impl Message for RouterMessage {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), Reply> {
        if let Some(m) = self.local.as_mut() {
            m.write(chunk).await?;
        }
        if self.queue.is_some() {
            if self.buf.len() + chunk.len() > self.max {
                return Err(Reply::too_big());
            }
            self.buf.extend_from_slice(chunk);
        }
        Ok(())
    }

    async fn commit(mut self) -> Result<String, Reply> {
        let mut ids = Vec::new();
        if let Some(q) = self.queue.take() {
            let data = std::mem::take(&mut self.buf);
            ids.push(
                q.enqueue(&self.from, std::mem::take(&mut self.remote), data)
                    .await?,
            );
        }
        if let Some(m) = self.local.take() {
            ids.push(m.commit().await?);
        }
        Ok(ids.join(" "))
    }

    fn abort(mut self) {
        if let Some(m) = self.local.take() {
            m.abort();
        }
    }
}
