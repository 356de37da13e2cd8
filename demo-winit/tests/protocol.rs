//! The canvas server and client protocols in memory (braid's connected
//! pair, fake clock): the handshake, relaying, the rate limit to the
//! token, and the client fed one byte at a time and all at once.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use braid::testing::{connected_pair, feed_in_chunks, MemoryReactor, Pair, StringTransport};
use braid::Protocol;
use demo_winit::client::{CanvasClient, CanvasEvent};
use demo_winit::proto::{ServerMsg, CANVAS_H, CANVAS_W, VERSION};
use demo_winit::server::{CanvasServer, ServerConfig};

type Events = Rc<RefCell<Vec<CanvasEvent>>>;

fn client(mr: &MemoryReactor, server: &CanvasServer, name: &str) -> (CanvasClient, Events, Pair) {
    let events: Events = Rc::default();
    let e = events.clone();
    let c = CanvasClient::new(name, move |_, ev| e.borrow_mut().push(ev));
    let pair = connected_pair(mr.reactor(), server.protocol(), c.protocol());
    pair.pump();
    (c, events, pair)
}

fn cursors(events: &Events) -> usize {
    events
        .borrow()
        .iter()
        .filter(|e| matches!(e, CanvasEvent::Message(ServerMsg::Cursor { .. })))
        .count()
}

#[test]
fn handshake_relay_and_the_rate_limit_on_a_fake_clock() {
    let mr = MemoryReactor::new();
    let mut config = ServerConfig::default();
    config.rate_per_second = 100.0;
    config.burst = 200.0;
    let server = CanvasServer::new(mr.reactor(), config).unwrap();
    let (ann, ann_ev, ann_pair) = client(&mr, &server, "ann");
    let ann_id = match ann_ev.borrow()[0] {
        CanvasEvent::Welcome { id, .. } => id,
        ref other => panic!("{other:?}"),
    };
    assert!(ann_ev
        .borrow()
        .ends_with(&[CanvasEvent::Message(ServerMsg::Ready)]));
    let (ben, ben_ev, ben_pair) = client(&mr, &server, "ben");
    ann_pair.pump();
    assert!(ann_ev.borrow().iter().any(
        |e| matches!(e, CanvasEvent::Message(ServerMsg::Joined { name, .. }) if name == "ben")
    ));
    assert_eq!(server.user_count(), 2);

    // A long stroke goes out in pieces that join up.
    let line: Vec<(u16, u16)> = (0..5000u32)
        .map(|i| {
            (
                (i % u32::from(CANVAS_W)) as u16,
                (i / 100) as u16 % CANVAS_H,
            )
        })
        .collect();
    assert!(ann.stroke(2, &line));
    ann_pair.pump();
    ben_pair.pump();
    let mut got = Vec::new();
    for e in ben_ev.borrow().iter() {
        if let CanvasEvent::Message(ServerMsg::Stroke { id, points, .. }) = e {
            assert_eq!(*id, ann_id);
            if let Some(last) = got.last() {
                assert_eq!(points[0], *last, "each piece starts where the last ended");
                got.extend_from_slice(&points[1..]);
            } else {
                got.extend_from_slice(points);
            }
        }
    }
    assert_eq!(got, line);
    assert_eq!(server.stroke_count(), 3);

    // The bucket: 200 at once (less the 3 stroke pieces), then 100 a
    // second on the reactor's clock.
    let before = cursors(&ben_ev);
    for i in 0..300 {
        ann.cursor(i, 1);
    }
    ann_pair.pump();
    ben_pair.pump();
    assert_eq!(cursors(&ben_ev) - before, 197);
    assert!(ann_ev
        .borrow()
        .iter()
        .any(|e| matches!(e, CanvasEvent::Message(ServerMsg::Error { code: 3, .. }))));
    mr.advance(Duration::from_millis(500));
    let before = cursors(&ben_ev);
    for i in 0..300 {
        ann.cursor(i, 2);
    }
    ann_pair.pump();
    ben_pair.pump();
    assert_eq!(cursors(&ben_ev) - before, 50, "half a second refills 50");
    assert_eq!(server.dropped(), 103 + 250);

    // Ben leaves: ann hears it.
    drop(ben);
    ben_pair.client().lose_connection();
    ben_pair.pump();
    ann_pair.pump();
    assert!(ann_ev
        .borrow()
        .iter()
        .any(|e| matches!(e, CanvasEvent::Message(ServerMsg::Left { .. }))));
    assert_eq!(server.user_count(), 1);
}

#[test]
fn the_client_decodes_the_same_events_one_byte_at_a_time_and_all_at_once() {
    let msgs = [
        ServerMsg::Welcome {
            version: VERSION,
            id: 3,
            colour: 0xabcdef,
            width: CANVAS_W,
            height: CANVAS_H,
        },
        ServerMsg::Stroke {
            id: 1,
            colour: 0x112233,
            width: 4,
            points: vec![(1, 1), (2, 3), (700, 500)],
        },
        ServerMsg::Joined {
            id: 1,
            colour: 0x112233,
            name: "ännä".into(),
        },
        ServerMsg::Cursor { id: 1, x: 9, y: 9 },
        ServerMsg::Ready,
        ServerMsg::Pong { token: 99 },
    ];
    let mut bytes = Vec::new();
    for m in &msgs {
        let p = m.encode();
        bytes.extend_from_slice(&(p.len() as u32).to_be_bytes());
        bytes.extend_from_slice(&p);
    }
    let run = |chunk: usize| {
        let events: Events = Rc::default();
        let e = events.clone();
        let c = CanvasClient::new("x", move |_, ev| e.borrow_mut().push(ev));
        let st = StringTransport::new();
        let mut p = c.protocol();
        p.connection_made(&st.transport());
        feed_in_chunks(&mut p, &st.transport(), &bytes, chunk);
        let v = events.borrow().clone();
        v
    };
    let whole = run(0);
    assert_eq!(whole.len(), msgs.len());
    assert_eq!(
        whole[0],
        CanvasEvent::Welcome {
            id: 3,
            colour: 0xabcdef
        }
    );
    assert_eq!(run(1), whole);
    assert_eq!(run(7), whole);
}

#[test]
fn a_server_sending_garbage_is_an_error_event_and_a_closed_connection() {
    let events: Events = Rc::default();
    let e = events.clone();
    let c = CanvasClient::new("x", move |_, ev| e.borrow_mut().push(ev));
    let st = StringTransport::new();
    let mut p = c.protocol();
    p.connection_made(&st.transport());
    p.data_received(&st.transport(), b"\x00\x00\x00\x02\x99\x00");
    assert!(
        matches!(&events.borrow()[0], CanvasEvent::ProtocolError(m) if m.contains("unknown message type 0x99"))
    );
    assert!(st.is_disconnecting());
    // An absurd length prefix: refused before any of it is buffered.
    let st = StringTransport::new();
    let mut p = c.protocol();
    p.connection_made(&st.transport());
    p.data_received(&st.transport(), &u32::MAX.to_be_bytes());
    assert!(st.is_disconnecting());
}
