//! Wraps the application to learn the `ControlFlow` it asks for.

use winit::application::ApplicationHandler;
use winit::event::{DeviceEvent, DeviceId, StartCause, WindowEvent};
use winit::event_loop::{ActiveEventLoop, ControlFlow};
use winit::window::WindowId;

pub(crate) struct Wrapper<'a, A> {
    app: &'a mut A,
    control_flow: ControlFlow,
    /// Set when the reactor stopped: ask winit's own loop to exit (where
    /// winit runs the loop, macOS).
    #[cfg_attr(not(target_vendor = "apple"), allow(dead_code))]
    exit_when: Option<std::rc::Rc<std::cell::Cell<bool>>>,
}

impl<'a, A> Wrapper<'a, A> {
    pub(crate) fn new(app: &'a mut A) -> Self {
        Wrapper {
            app,
            control_flow: ControlFlow::Wait,
            exit_when: None,
        }
    }

    /// Makes the wrapper call `ActiveEventLoop::exit` once `flag` is set.
    #[cfg(target_vendor = "apple")]
    pub(crate) fn exit_when(mut self, flag: std::rc::Rc<std::cell::Cell<bool>>) -> Self {
        self.exit_when = Some(flag);
        self
    }

    fn exit_if_stopped(&self, event_loop: &ActiveEventLoop) {
        if self.exit_when.as_ref().is_some_and(|f| f.get()) {
            event_loop.exit();
        }
    }

    #[cfg_attr(target_vendor = "apple", allow(dead_code))]
    pub(crate) fn control_flow(&self) -> ControlFlow {
        self.control_flow
    }
}

impl<T: 'static, A: ApplicationHandler<T>> ApplicationHandler<T> for Wrapper<'_, A> {
    fn new_events(&mut self, event_loop: &ActiveEventLoop, cause: StartCause) {
        self.exit_if_stopped(event_loop);
        self.app.new_events(event_loop, cause);
    }
    fn resumed(&mut self, event_loop: &ActiveEventLoop) {
        self.app.resumed(event_loop);
    }
    fn user_event(&mut self, event_loop: &ActiveEventLoop, event: T) {
        self.app.user_event(event_loop, event);
    }
    fn window_event(
        &mut self,
        event_loop: &ActiveEventLoop,
        window_id: WindowId,
        event: WindowEvent,
    ) {
        self.app.window_event(event_loop, window_id, event);
    }
    fn device_event(
        &mut self,
        event_loop: &ActiveEventLoop,
        device_id: DeviceId,
        event: DeviceEvent,
    ) {
        self.app.device_event(event_loop, device_id, event);
    }
    fn about_to_wait(&mut self, event_loop: &ActiveEventLoop) {
        self.app.about_to_wait(event_loop);
        // The app sets its ControlFlow by now at the latest.
        self.control_flow = event_loop.control_flow();
        self.exit_if_stopped(event_loop);
    }
    fn suspended(&mut self, event_loop: &ActiveEventLoop) {
        self.app.suspended(event_loop);
    }
    fn exiting(&mut self, event_loop: &ActiveEventLoop) {
        self.app.exiting(event_loop);
    }
    fn memory_warning(&mut self, event_loop: &ActiveEventLoop) {
        self.app.memory_warning(event_loop);
    }
}
