//! A calloop program that serves the echo protocol: the reactor is one
//! source in the program's own `calloop::EventLoop`, beside a calloop timer
//! that reports how many dispatches the reactor has needed.
//!
//! ```text
//! cargo run -p braid-calloop --example calloop_echo -- [PORT]   (0 picks one)
//! ```

use std::time::Duration;

use braid::{Address, Protocol, Reactor, Transport};
use braid_calloop::ReactorSource;
use calloop::timer::{TimeoutAction, Timer};
use calloop::EventLoop;

struct Echo;

impl Protocol for Echo {
    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        t.write(data);
    }
}

/// The program's own state, shared by all of the loop's sources.
struct State {
    dispatches: u64,
    io_events: u64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = std::env::args()
        .nth(1)
        .map(|p| p.parse())
        .transpose()?
        .unwrap_or(9000);
    let reactor = Reactor::new()?;
    let listening = reactor.listen_tcp(([127, 0, 0, 1], port).into(), |_: &Address| Echo)?;
    println!(
        "echo server on {} inside a calloop loop",
        listening.local_addr()
    );

    let mut event_loop: EventLoop<State> = EventLoop::try_new()?;
    let source = ReactorSource::new(&reactor)?.stop_loop_on_stop(event_loop.get_signal());
    event_loop
        .handle()
        .insert_source(source, |d, _, state: &mut State| {
            state.dispatches += 1;
            state.io_events += d.io_events as u64;
        })
        .map_err(|e| e.error)?;
    event_loop.handle().insert_source(
        Timer::from_duration(Duration::from_secs(10)),
        |_, _, state| {
            println!(
                "{} dispatches, {} I/O events so far",
                state.dispatches, state.io_events
            );
            TimeoutAction::ToDuration(Duration::from_secs(10))
        },
    )?;
    let handle = reactor.handle();
    std::thread::spawn(move || {
        // End on stdin's EOF (Ctrl-D), through the reactor's Send handle.
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new());
        handle.stop();
    });
    event_loop.run(
        None,
        &mut State {
            dispatches: 0,
            io_events: 0,
        },
        |_| {},
    )?;
    Ok(())
}
