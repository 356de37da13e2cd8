//! Test doubles for Qt-hosted reactors (feature `testing`): the
//! conformance [`Harness`] run by Qt's own loop, and a modal dialog to
//! check re-entrancy.
//!
//! Qt wants its application on the main thread and one per process, so a
//! Qt test binary has its own `main` (`harness = false`) that makes the
//! [`Application`] first and runs the checks in turn.

use std::cell::RefCell;
use std::ffi::c_void;
use std::fmt;
use std::time::Duration;

use braid::testing::conformance::{Harness, HostTick};
use braid::Reactor;
use cpp::cpp;

cpp! {{
    #include <QtCore/QCoreApplication>
    #include <QtCore/QTimer>
    #include <QtWidgets/QApplication>
    #include <QtWidgets/QDialog>
    #include <QtWidgets/QLabel>
    #include <QtWidgets/QVBoxLayout>
    #include <QtCore/QPointer>
    #include <QtCore/QAbstractEventDispatcher>
    #include <QtCore/QByteArray>
    #include <QtGui/QGuiApplication>

    static int braid_qt_argc = 1;
    static char braid_qt_arg0[] = "braid-qt-test";
    static char *braid_qt_argv[] = { braid_qt_arg0, nullptr };
    static QPointer<QDialog> braid_qt_modal;
}}

/// The process's `QApplication` (widgets), made on the calling thread,
/// which should be the main one. Qt picks its platform from the usual
/// environment (`QT_QPA_PLATFORM`, `DISPLAY`) and its event dispatcher
/// from `QT_NO_GLIB` (set: Qt's own UNIX dispatcher; unset: glib's).
pub struct Application(*mut c_void);

impl Application {
    /// Creates the application.
    ///
    /// # Panics
    ///
    /// If one exists already.
    pub fn new() -> Application {
        let app = cpp!(unsafe [] -> *mut c_void as "QApplication*" {
            if (QCoreApplication::instance()) return nullptr;
            return new QApplication(braid_qt_argc, braid_qt_argv);
        });
        assert!(!app.is_null(), "a Qt application exists already");
        Application(app)
    }

    /// The name of Qt's event dispatcher class on this thread
    /// (`QEventDispatcherGlib`, `QUnixEventDispatcherQPA`, ...).
    pub fn dispatcher_name(&self) -> String {
        let mut out = String::new();
        let out_ptr: *mut String = &mut out;
        cpp!(unsafe [out_ptr as "void*"] {
            auto d = QAbstractEventDispatcher::instance();
            QByteArray name = d ? QByteArray(d->metaObject()->className()) : QByteArray("none");
            const char *s = name.constData();
            rust!(braid_qt_name [out_ptr: *mut String as "void*", s: *const std::ffi::c_char as "const char*"] {
                // SAFETY: `s` is a NUL-terminated string alive for this call.
                let name = unsafe { std::ffi::CStr::from_ptr(s) };
                unsafe { (*out_ptr).push_str(&name.to_string_lossy()) };
            });
        });
        out
    }

    /// The name of Qt's platform plugin (`xcb`, `offscreen`, `wayland`).
    pub fn platform_name(&self) -> String {
        let mut out = String::new();
        let out_ptr: *mut String = &mut out;
        cpp!(unsafe [out_ptr as "void*"] {
            QByteArray name = QGuiApplication::platformName().toUtf8();
            const char *s = name.constData();
            rust!(braid_qt_platform [out_ptr: *mut String as "void*", s: *const std::ffi::c_char as "const char*"] {
                // SAFETY: as in dispatcher_name.
                let name = unsafe { std::ffi::CStr::from_ptr(s) };
                unsafe { (*out_ptr).push_str(&name.to_string_lossy()) };
            });
        });
        out
    }
}

impl Default for Application {
    fn default() -> Self {
        Application::new()
    }
}

impl Drop for Application {
    fn drop(&mut self) {
        let app = self.0;
        cpp!(unsafe [app as "QApplication*"] { delete app; });
    }
}

impl fmt::Debug for Application {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Application")
            .field("platform", &self.platform_name())
            .finish()
    }
}

/// Opens a modal `QDialog` and runs its nested event loop
/// (`QDialog::exec`) until [`close_modal_dialog`] is called. Returns at
/// once if one is open already.
pub fn exec_modal_dialog(text: &str) {
    let text = std::ffi::CString::new(text.replace('\0', " ")).unwrap_or_default();
    let t = text.as_ptr();
    cpp!(unsafe [t as "const char*"] {
        if (braid_qt_modal) return;
        QDialog dialog;
        dialog.setWindowTitle(QStringLiteral("braid-qt modal"));
        auto layout = new QVBoxLayout(&dialog);
        layout->addWidget(new QLabel(QString::fromUtf8(t), &dialog));
        dialog.setModal(true);
        braid_qt_modal = &dialog;
        dialog.exec();
        braid_qt_modal = nullptr;
    });
}

/// Closes the dialog [`exec_modal_dialog`] opened; false if none is open.
pub fn close_modal_dialog() -> bool {
    cpp!(unsafe [] -> bool as "bool" {
        if (!braid_qt_modal) return false;
        braid_qt_modal->accept();
        return true;
    })
}

/// A repeating Qt timer that calls a Rust closure until it returns false.
struct Tick {
    timer: *mut c_void,
    _f: Box<RefCell<HostTick>>,
}

impl Tick {
    fn start(every: Duration, f: HostTick) -> Tick {
        let f = Box::new(RefCell::new(f));
        let ctx: *const RefCell<HostTick> = &*f;
        let ms = i32::try_from(every.as_millis()).unwrap_or(i32::MAX);
        let timer = cpp!(unsafe [ms as "int", ctx as "const void*"] -> *mut c_void as "QTimer*" {
            auto t = new QTimer();
            t->setTimerType(Qt::PreciseTimer);
            QObject::connect(t, &QTimer::timeout, [t, ctx]() {
                bool more = rust!(braid_qt_tick [ctx: *const RefCell<HostTick> as "const void*"] -> bool as "bool" {
                    // SAFETY: the box outlives the timer (Tick::drop stops
                    // and disconnects it first).
                    let f = unsafe { &*ctx };
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (f.borrow_mut())()))
                        .unwrap_or(false)
                });
                if (!more) t->stop();
            });
            t->start(ms);
            return t;
        });
        Tick { timer, _f: f }
    }
}

impl Drop for Tick {
    fn drop(&mut self) {
        let t = self.timer;
        cpp!(unsafe [t as "QTimer*"] {
            t->stop();
            QObject::disconnect(t, nullptr, nullptr, nullptr);
            delete t;
        });
    }
}

/// The conformance suite's view of Qt: each run attaches the reactor to
/// the application's loop, quits it when the reactor stops, and host
/// timers are `QTimer`s.
#[derive(Default)]
pub struct QtHarness {
    intervals: RefCell<Vec<(Duration, HostTick)>>,
}

impl fmt::Debug for QtHarness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QtHarness").finish_non_exhaustive()
    }
}

impl Harness for QtHarness {
    fn run(&self, reactor: &Reactor) {
        let attached = crate::attach(reactor).expect("attach to the Qt application's loop");
        attached.quit_on_stop();
        let ticks: Vec<Tick> = self
            .intervals
            .borrow_mut()
            .drain(..)
            .map(|(every, f)| Tick::start(every, f))
            .collect();
        let code = attached.exec();
        drop(ticks);
        drop(attached);
        assert_eq!(code, 0, "QCoreApplication::exec ended with {code}");
    }

    fn host_interval(&self, every: Duration, f: HostTick) {
        self.intervals.borrow_mut().push((every, f));
    }

    fn name(&self) -> String {
        "qt".into()
    }
}
