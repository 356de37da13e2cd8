//! # braid-qt
//!
//! Hosts a braid [`Reactor`] inside a Qt 6 event loop: the loop of every
//! `QApplication`, `QGuiApplication` (QML) and `QCoreApplication`. Sockets,
//! timers and protocols then run on Qt's GUI thread, with no second thread,
//! no channels and no polling timer.
//!
//! ```text
//!   QCoreApplication::exec() (Qt's loop: glib or Qt's own UNIX dispatcher)
//!     └─ QSocketNotifier(Read) on Reactor::as_fd()
//!          activated ─▶ Reactor::dispatch(budget)
//!          (one fd: sockets, braid timers via its timerfd, call_soon,
//!           call_from_thread all make it readable)
//!   Reactor::stop() ─▶ HostLoop::reactor_stopped ─▶ QCoreApplication::quit
//!                                                   (queued) / your on_stop
//! ```
//!
//! ```no_run
//! use braid::Reactor;
//!
//! // The application exists first (qmetaobject's `QmlEngine::new()`,
//! // cxx-qt's `QGuiApplication::new()`, or your own C++ `main`).
//! let reactor = Reactor::new()?;
//! let attached = braid_qt::attach(&reactor)?;
//! attached.quit_on_stop();
//! // ... listen_tcp / connect_tcp / call_later as usual ...
//! attached.exec(); // QCoreApplication::exec()
//! # std::io::Result::Ok(())
//! ```
//!
//! ## Why `cpp` and `qttypes` (qmetaobject's stack), not cxx-qt
//!
//! The host needs four Qt calls (`QSocketNotifier`, `activated`,
//! `QCoreApplication::quit`, a `QTimer` where there is no timerfd) and must
//! work under whatever binding the application uses. qmetaobject's two
//! foundation crates give exactly that: `qttypes` finds Qt through `qmake6`
//! and links it, `cpp` compiles the C++ written inline here, and no code
//! generator or CMake step enters the application's build. cxx-qt would
//! add its code generator and build system for a crate with no `QObject`
//! of its own. The Qt example (`examples/qt_lines.rs`) uses qmetaobject's
//! QML engine; a cxx-qt application attaches the same way, once its
//! `QGuiApplication` exists.
//!
//! ## Building
//!
//! Qt 6 (or 5.15) headers and `qmake` at build time: Debian's
//! `qt6-base-dev` (and `qt6-declarative-dev` for QML). `qttypes` asks
//! `qmake6` (or `qmake`, or the one `QMAKE` names) where Qt is, or takes
//! `QT_INCLUDE_PATH` and `QT_LIBRARY_PATH`; the crate links QtCore, QtGui
//! and QtWidgets. Its tests and example run under both of Qt's Linux event
//! dispatchers (glib's, the default, and Qt's own with `QT_NO_GLIB=1`).
//!
//! ## Measured
//!
//! 64-byte round trip 1.28x the standalone loop under Qt's glib
//! dispatcher and 1.24x under its own (BENCHMARKS.md), no wakeups over
//! 5 s idle with 200 connections open; Qt's xcb platform runs one thread
//! of its own (its X event reader).
//!
//! ## Re-entrancy
//!
//! Qt's notifiers fire in nested loops: a modal `QDialog::exec()` opened
//! from a protocol callback keeps the network running (the reactor's
//! dispatch is re-entrant), and the fd's level-triggered readiness never
//! spins: Qt waits in `poll(2)` (or glib's) until the reactor has work.
//! The test suite opens a modal dialog from a `data_received` and checks
//! that a hundred round trips complete while it is open.
//!
//! ## Threads
//!
//! Attach on the thread whose Qt loop should drive the reactor: the
//! thread of the `QCoreApplication`, or a `QThread` running its own event
//! loop. A thread with no Qt event dispatcher is refused, so a callback
//! can never run where Qt does not loop.
//!
//! A panic that escapes a dispatch (the reactor isolates callbacks' own
//! panics, so this means a bug in braid or a host callback) must not
//! unwind through Qt's C++ frames: it is caught, the loop is told to exit,
//! and [`Attached::exec`] resumes it on the way out.
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

use std::any::Any;
use std::cell::RefCell;
use std::ffi::c_void;
use std::fmt;
use std::io;
use std::os::fd::AsRawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::time::Instant;

use braid::{Budget, HostGuard, HostLoop, Reactor};
use cpp::cpp;
// Linked for its link directives (QtCore, QtGui, QtWidgets): rustc leaves
// out a crate nothing names.
extern crate qttypes;

#[cfg(feature = "testing")]
pub mod testing;

cpp! {{
    #include <QtCore/QAbstractEventDispatcher>
    #include <QtCore/QCoreApplication>
    #include <QtCore/QMetaObject>
    #include <QtCore/QSocketNotifier>
    #include <QtCore/QThread>
    #include <QtCore/QTimer>
}}

/// Attaches `reactor` to the Qt event loop of the calling thread, with the
/// default dispatch budget. Keep the returned guard: dropping it detaches.
///
/// # Errors
///
/// `NotFound` if the calling thread has no Qt event dispatcher (create the
/// `QCoreApplication`, or attach inside a `QThread`, first);
/// `AlreadyExists` if another host already drives `reactor`.
pub fn attach(reactor: &Reactor) -> io::Result<Attached> {
    Attached::new(reactor, Budget::default())
}

/// Whether the calling thread has a Qt event dispatcher (an application
/// was created on it, or it is a running `QThread`).
pub fn thread_has_event_loop() -> bool {
    cpp!(unsafe [] -> bool as "bool" {
        return QAbstractEventDispatcher::instance(QThread::currentThread()) != nullptr;
    })
}

/// Asks the application's event loop to quit, queued: a quit asked before
/// `exec()` starts still ends it. Does nothing without an application.
pub fn quit_application() {
    cpp!(unsafe [] {
        if (auto app = QCoreApplication::instance()) {
            QMetaObject::invokeMethod(app, "quit", Qt::QueuedConnection);
        }
    })
}

struct Host {
    reactor: Reactor,
    budget: Budget,
    on_stop: RefCell<Vec<Box<dyn FnOnce()>>>,
    /// A panic that escaped a dispatch, held for [`Attached::exec`].
    panic: RefCell<Option<Box<dyn Any + Send>>>,
    /// Only where the reactor has no timerfd: a single-shot precise
    /// `QTimer` at its next deadline.
    deadline: *mut c_void,
}

impl Host {
    /// Called from C++ (the notifier's and the deadline timer's slots).
    fn dispatch(&self) {
        if self.panic.borrow().is_some() {
            return;
        }
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| self.reactor.dispatch(self.budget))) {
            tracing::error!("braid-qt: a panic escaped the reactor's dispatch; quitting Qt's loop");
            *self.panic.borrow_mut() = Some(p);
            cpp!(unsafe [] {
                if (QCoreApplication::instance()) QCoreApplication::exit(101);
            });
        }
    }
}

impl HostLoop for Host {
    fn reactor_stopped(&self) {
        for f in std::mem::take(&mut *self.on_stop.borrow_mut()) {
            f();
        }
    }

    fn deadline_changed(&self, deadline: Option<Instant>) {
        let timer = self.deadline;
        if timer.is_null() {
            return;
        }
        // QTimer takes milliseconds: round up, or it fires early and the
        // loop turns once for nothing.
        let ms: i32 = match deadline {
            None => -1,
            Some(d) => {
                let wait = d.saturating_duration_since(Instant::now());
                i32::try_from(wait.as_nanos().div_ceil(1_000_000)).unwrap_or(i32::MAX)
            }
        };
        cpp!(unsafe [timer as "QTimer*", ms as "int"] {
            if (ms < 0) timer->stop(); else timer->start(ms);
        });
    }
}

/// A reactor attached to a Qt event loop. Dropping it detaches.
#[must_use = "the reactor is detached from Qt when this is dropped: keep it alive (`let _attached = braid_qt::attach(..)?;`)"]
pub struct Attached {
    host: Rc<Host>,
    notifier: *mut c_void,
    _guard: HostGuard,
}

impl Attached {
    /// Attaches with a chosen dispatch budget.
    ///
    /// # Errors
    ///
    /// As [`attach`].
    pub fn new(reactor: &Reactor, budget: Budget) -> io::Result<Attached> {
        if !thread_has_event_loop() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "this thread has no Qt event loop: create the QCoreApplication (or run a QThread) before attaching",
            ));
        }
        let deadline: *mut c_void = if reactor.timers_in_fd() {
            std::ptr::null_mut()
        } else {
            cpp!(unsafe [] -> *mut c_void as "QTimer*" {
                auto t = new QTimer();
                t->setSingleShot(true);
                t->setTimerType(Qt::PreciseTimer);
                return t;
            })
        };
        let host = Rc::new(Host {
            reactor: reactor.clone(),
            budget,
            on_stop: RefCell::default(),
            panic: RefCell::default(),
            deadline,
        });
        let guard = match reactor.attach_host(host.clone()) {
            Ok(g) => g,
            Err(e) => {
                delete_later(deadline);
                return Err(e);
            }
        };
        let ctx: *const Host = Rc::as_ptr(&host);
        if !deadline.is_null() {
            cpp!(unsafe [deadline as "QTimer*", ctx as "const void*"] {
                QObject::connect(deadline, &QTimer::timeout, [ctx]() {
                    rust!(braid_qt_deadline [ctx: *const Host as "const void*"] {
                        // SAFETY: the timer is disconnected before the host is dropped.
                        unsafe { (*ctx).dispatch() }
                    });
                });
            });
            host.deadline_changed(reactor.next_deadline());
        }
        let fd = reactor.as_raw_fd();
        let notifier = cpp!(unsafe [fd as "int", ctx as "const void*"] -> *mut c_void as "QSocketNotifier*" {
            auto n = new QSocketNotifier(fd, QSocketNotifier::Read);
            QObject::connect(n, &QSocketNotifier::activated, [ctx]() {
                rust!(braid_qt_activated [ctx: *const Host as "const void*"] {
                    // SAFETY: the notifier is disabled and disconnected
                    // before the host is dropped (Attached::drop).
                    unsafe { (*ctx).dispatch() }
                });
            });
            n->setEnabled(true);
            return n;
        });
        Ok(Attached {
            host,
            notifier,
            _guard: guard,
        })
    }

    /// Quits the application's loop (`QCoreApplication::quit`, queued)
    /// when the reactor stops.
    #[doc(alias = "quit")]
    pub fn quit_on_stop(&self) {
        self.on_stop(quit_application);
    }

    /// Runs `f` when the reactor stops (after its shutdown triggers), for
    /// example to close a window or leave a `QEventLoop` of your own.
    pub fn on_stop(&self, f: impl FnOnce() + 'static) {
        self.host.on_stop.borrow_mut().push(Box::new(f));
    }

    /// The reactor.
    pub fn reactor(&self) -> &Reactor {
        &self.host.reactor
    }

    /// Runs `QCoreApplication::exec()` and returns its exit code; if a
    /// panic escaped a dispatch meanwhile (which quit the loop), resumes
    /// it here, outside Qt's frames. Returns -1 without an application.
    pub fn exec(&self) -> i32 {
        let code = cpp!(unsafe [] -> i32 as "int" {
            if (!QCoreApplication::instance()) return -1;
            return QCoreApplication::exec();
        });
        self.resume_panic();
        code
    }

    /// Resumes a panic that escaped a dispatch, if one did. Call it after
    /// an event loop of your own returns (a `QEventLoop::exec`, a QML
    /// engine's `exec`); [`exec`](Self::exec) does it for you.
    pub fn resume_panic(&self) {
        if let Some(p) = self.host.panic.borrow_mut().take() {
            std::panic::resume_unwind(p);
        }
    }
}

fn delete_later(object: *mut c_void) {
    if object.is_null() {
        return;
    }
    cpp!(unsafe [object as "QObject*"] {
        QObject::disconnect(object, nullptr, nullptr, nullptr);
        object->deleteLater();
    });
}

impl Drop for Attached {
    fn drop(&mut self) {
        let n = self.notifier;
        // Disabled at once (no more activations reach the host), deleted by
        // Qt's loop: the guard may be dropped inside the notifier's own
        // `activated`, where deleting it outright is not allowed.
        cpp!(unsafe [n as "QSocketNotifier*"] {
            n->setEnabled(false);
        });
        delete_later(n);
        let t = self.host.deadline;
        if !t.is_null() {
            cpp!(unsafe [t as "QTimer*"] { t->stop(); });
            delete_later(t);
        }
    }
}

impl fmt::Debug for Attached {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attached")
            .field("reactor", &self.host.reactor)
            .field("budget", &self.host.budget)
            .finish()
    }
}
