//! Wraps the application to learn the `ControlFlow` it asks for.

use winit::application::ApplicationHandler;
use winit::event::{DeviceEvent, DeviceId, StartCause, WindowEvent};
use winit::event_loop::{ActiveEventLoop, ControlFlow};
use winit::window::WindowId;

pub(crate) struct Wrapper<'a, A> {
    app: &'a mut A,
    control_flow: ControlFlow,
}

impl<'a, A> Wrapper<'a, A> {
    pub(crate) fn new(app: &'a mut A) -> Self {
        Wrapper {
            app,
            control_flow: ControlFlow::Wait,
        }
    }

    pub(crate) fn control_flow(&self) -> ControlFlow {
        self.control_flow
    }
}

impl<T: 'static, A: ApplicationHandler<T>> ApplicationHandler<T> for Wrapper<'_, A> {
    fn new_events(&mut self, event_loop: &ActiveEventLoop, cause: StartCause) {
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
