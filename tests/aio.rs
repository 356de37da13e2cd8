//! Async streams on the reactor: futures-io traits, backpressure, and a
//! third-party async crate (async-tungstenite: WebSocket) doing real work
//! over braid streams, client and server in one reactor.

use std::time::Duration;

use async_tungstenite::tungstenite::Message;
use braid::aio::{TcpListener, TcpStream};
use braid::Reactor;
use futures_util::{AsyncReadExt, AsyncWriteExt, StreamExt};

#[test]
fn websocket_echo_over_braid_streams_with_async_tungstenite() {
    let reactor = Reactor::new().unwrap();
    let listener = TcpListener::bind(&reactor, "127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr();
    // Server: accept one WebSocket, echo text and binary frames reversed.
    let server = reactor.spawn_local(async move {
        let stream = listener.accept().await.unwrap();
        let mut ws = async_tungstenite::accept_async(stream).await.unwrap();
        let mut served = 0;
        while let Some(msg) = ws.next().await {
            match msg.unwrap() {
                Message::Text(t) => ws
                    .send(Message::text(t.chars().rev().collect::<String>()))
                    .await
                    .unwrap(),
                Message::Binary(b) => ws
                    .send(Message::binary(
                        b.iter().rev().copied().collect::<Vec<u8>>(),
                    ))
                    .await
                    .unwrap(),
                Message::Close(_) => break,
                _ => {}
            }
            served += 1;
        }
        served
    });
    let r = reactor.clone();
    let client = reactor.block_on(async move {
        let stream = TcpStream::connect_timeout(&r, addr, Some(Duration::from_secs(5)))
            .await
            .unwrap();
        let (mut ws, response) =
            async_tungstenite::client_async(format!("ws://{addr}/echo"), stream)
                .await
                .unwrap();
        assert_eq!(response.status(), 101);
        let mut got = Vec::new();
        for i in 0..100 {
            ws.send(Message::text(format!("message {i}")))
                .await
                .unwrap();
            match ws.next().await.unwrap().unwrap() {
                Message::Text(t) => got.push(t.to_string()),
                other => panic!("unexpected {other:?}"),
            }
        }
        // A large binary frame: exercises buffering and backpressure.
        let big: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
        ws.send(Message::binary(big.clone())).await.unwrap();
        let back = match ws.next().await.unwrap().unwrap() {
            Message::Binary(b) => b,
            other => panic!("unexpected {other:?}"),
        };
        assert!(back.iter().rev().copied().eq(big.iter().copied()));
        ws.close(None).await.unwrap();
        got
    });
    let got = client.unwrap();
    assert_eq!(got.len(), 100);
    assert_eq!(got[7], "7 egassem");
    let served = reactor.block_on(server).unwrap().unwrap();
    assert_eq!(served, 101);
}

#[test]
fn read_write_and_half_close() {
    let reactor = Reactor::new().unwrap();
    let listener = TcpListener::bind(&reactor, "127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr();
    // The server reads everything until EOF, then answers with the length.
    let server = reactor.spawn_local(async move {
        let mut s = listener.accept().await.unwrap();
        let mut all = Vec::new();
        s.read_to_end(&mut all).await.unwrap();
        s.write_all(format!("{} bytes", all.len()).as_bytes())
            .await
            .unwrap();
        s.close().await.unwrap();
        all.len()
    });
    let r = reactor.clone();
    let answer = reactor
        .block_on(async move {
            let mut s = TcpStream::connect(&r, addr).await.unwrap();
            // 8 MB: far past the watermarks, so poll_write must wait on
            // the transport's backpressure.
            let data = vec![1u8; 8 << 20];
            s.write_all(&data).await.unwrap();
            s.close().await.unwrap(); // half-close: we can still read
            let mut answer = String::new();
            s.read_to_string(&mut answer).await.unwrap();
            answer
        })
        .unwrap();
    assert_eq!(answer, format!("{} bytes", 8 << 20));
    assert_eq!(reactor.block_on(server).unwrap().unwrap(), 8 << 20);
}

#[test]
fn connect_errors_are_io_errors() {
    let reactor = Reactor::new().unwrap();
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let r = reactor.clone();
    let err = reactor
        .block_on(async move { TcpStream::connect(&r, free).await.unwrap_err() })
        .unwrap();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
}
