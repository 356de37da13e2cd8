#![cfg(unix)]
//! 200 short-lived children, 20 at a time: every one reaped, no
//! descriptor left open, no zombie, and no thread started to watch them.
//! (Alone in its test binary so that the counts are this test's.)

use std::cell::Cell;
use std::process::{Command, ExitStatus};
use std::rc::Rc;
use std::time::Duration;

use braid::process::{Process, ProcessProtocol};
use braid::testing::run_until;
use braid::Reactor;

fn count(dir: &str) -> usize {
    std::fs::read_dir(dir).unwrap().count()
}

/// Children of this process that have exited but not been reaped.
fn zombies() -> Vec<String> {
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        let Some(after) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = after.1.split_whitespace().collect();
        if fields.len() > 1 && fields[0] == "Z" && fields[1] == me {
            found.push(stat);
        }
    }
    found
}

struct Counter {
    ended: Rc<Cell<u32>>,
    failed: Rc<Cell<u32>>,
    want: i32,
}

impl ProcessProtocol for Counter {
    fn out_received(&mut self, _: &Process, _: &[u8]) {}
    fn process_ended(&mut self, _: &Process, status: ExitStatus) {
        if status.code() != Some(self.want) {
            self.failed.set(self.failed.get() + 1);
        }
        self.ended.set(self.ended.get() + 1);
    }
}

#[test]
fn two_hundred_children_leave_no_descriptor_zombie_or_thread() {
    let reactor = Reactor::new().unwrap();
    // Warm up: the reactor's own descriptors exist before the count.
    reactor.iterate(Duration::ZERO).unwrap();
    let fds = count("/proc/self/fd");
    let threads = count("/proc/self/task");
    let ended = Rc::new(Cell::new(0u32));
    let failed = Rc::new(Cell::new(0u32));
    let mut started = 0;
    let mut peak_threads = threads;
    while started < 200 {
        if started - ended.get() < 20 {
            let want = started % 7;
            reactor
                .spawn_process(
                    Command::new("/bin/sh").args(["-c", &format!("exit {want}")]),
                    Counter {
                        ended: ended.clone(),
                        failed: failed.clone(),
                        want: want as i32,
                    },
                )
                .unwrap();
            started += 1;
            peak_threads = peak_threads.max(count("/proc/self/task"));
        } else {
            reactor.iterate(Duration::from_millis(100)).unwrap();
        }
    }
    run_until(&reactor, Duration::from_secs(60), || ended.get() == 200).unwrap();
    assert_eq!(failed.get(), 0, "every exit code came through");
    assert_eq!(peak_threads, threads, "no thread watches the children");
    assert_eq!(count("/proc/self/fd"), fds, "no descriptor left open");
    assert!(zombies().is_empty(), "zombies: {:?}", zombies());
}
