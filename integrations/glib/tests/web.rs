//! braid's HTTP server inside a glib main loop (as in a GTK app) answers
//! 1,000 requests from clients on other threads, on keep-alive connections
//! and on fresh ones, while the loop also runs a glib timer (the GUI side).

use std::cell::Cell;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use braid::Reactor;
use braid_web::{FnResource, Request, Response, Site, SiteConfig};
use glib::thread_guard::ThreadGuard;
use glib::{ControlFlow, MainContext};

/// `n` requests on one connection; every answer checked.
fn client(addr: SocketAddr, id: usize, n: usize, keep_alive: bool) -> usize {
    let mut ok = 0;
    let mut conn: Option<BufReader<TcpStream>> = None;
    for i in 0..n {
        if conn.is_none() || !keep_alive {
            let s = TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            conn = Some(BufReader::new(s));
        }
        let c = conn.as_mut().unwrap();
        let close = if keep_alive {
            ""
        } else {
            "Connection: close\r\n"
        };
        c.get_mut()
            .write_all(format!("GET /{id}/{i} HTTP/1.1\r\nHost: x\r\n{close}\r\n").as_bytes())
            .unwrap();
        let mut status = String::new();
        c.read_line(&mut status).unwrap();
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        let mut len = 0;
        loop {
            let mut line = String::new();
            c.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length: ") {
                len = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0u8; len];
        c.read_exact(&mut body).unwrap();
        assert_eq!(body, format!("hello {id}/{i}\n").as_bytes());
        ok += 1;
    }
    ok
}

#[test]
fn a_site_in_the_glib_loop_answers_a_thousand_requests() {
    let context = MainContext::new();
    context
        .with_thread_default(|| {
            let reactor = Reactor::new().unwrap();
            let main_loop = glib::MainLoop::new(Some(&context), false);
            let attached = braid_glib::attach(&reactor, &context).unwrap();
            attached.quit_on_stop(&main_loop);
            let served = Rc::new(Cell::new(0u32));
            let s = served.clone();
            let site = Site::with_config(
                FnResource::leaf(move |req: Request| {
                    s.set(s.get() + 1);
                    Response::text(format!("hello {}\n", req.postpath().join("/")))
                }),
                SiteConfig {
                    access_log: false,
                    ..SiteConfig::default()
                },
            );
            let port = reactor
                .listen_tcp("127.0.0.1:0".parse().unwrap(), site.clone())
                .unwrap();
            let addr = port.local_addr();
            // 8 clients x 100 requests on keep-alive connections, and 2 x
            // 100 each on a fresh connection per request.
            let handles: Vec<_> = (0..10)
                .map(|id| std::thread::spawn(move || client(addr, id, 100, id < 8)))
                .collect();
            // The GUI side: a glib timer keeps ticking meanwhile.
            let ticks = Arc::new(AtomicU32::new(0));
            let t = ticks.clone();
            let tick = glib::timeout_source_new(
                Duration::from_millis(5),
                None,
                glib::Priority::DEFAULT,
                move || {
                    t.fetch_add(1, Ordering::Relaxed);
                    ControlFlow::Continue
                },
            );
            tick.attach(Some(&context));
            let handles = Rc::new(std::cell::RefCell::new(Some(handles)));
            let total = Rc::new(Cell::new(0usize));
            // glib sources want `Send` closures; these run on this thread.
            let state = ThreadGuard::new((handles.clone(), total.clone(), reactor.clone()));
            // Poll for the clients' end from the loop itself.
            let watch = glib::timeout_source_new(
                Duration::from_millis(10),
                None,
                glib::Priority::DEFAULT,
                move || {
                    let (h, tot, r) = state.get_ref();
                    let done = h.borrow().as_ref().unwrap().iter().all(|t| t.is_finished());
                    if done {
                        for t in h.borrow_mut().take().unwrap() {
                            tot.set(tot.get() + t.join().unwrap());
                        }
                        r.stop();
                        return ControlFlow::Break;
                    }
                    ControlFlow::Continue
                },
            );
            watch.attach(Some(&context));
            // A failing test ends instead of hanging.
            let r = ThreadGuard::new(reactor.clone());
            let guard = glib::timeout_source_new(
                Duration::from_secs(120),
                None,
                glib::Priority::DEFAULT,
                move || {
                    r.get_ref().stop();
                    ControlFlow::Break
                },
            );
            guard.attach(Some(&context));
            main_loop.run();
            tick.destroy();
            assert_eq!(total.get(), 1000, "answers checked by the clients");
            assert_eq!(served.get(), 1000);
            assert_eq!(site.requests_rendered(), 1000);
            assert!(
                ticks.load(Ordering::Relaxed) > 0,
                "the glib timer ran alongside"
            );
            drop(port);
        })
        .unwrap();
}
