//! The thin wasm layer: a WebSocket (the page's, or any constructor with the same
//! shape, such as the `ws` package in Node), timers, and plain JS callbacks around a
//! [`Session`]. All protocol logic is in the session.
//!
//! Data crosses the boundary as JSON text: everything one call produces (each view's
//! changes, status, workflow and error events) goes out as one string to one JS
//! function, the front-end's dispatcher (`js/index.js`), which parses it once with
//! `JSON.parse` and calls the views' callbacks and the event listeners. So an incoming
//! frame costs one call into wasm and one call out, however many views it concerns.
//!
//! The socket handlers are created once per client and hold it alive while it is
//! connected, as an open WebSocket would; `close()` lets it go.

use std::cell::RefCell;
use std::rc::Rc;

use clonewire_core::client::Millis;
use clonewire_core::protocol::client::{fast, CloseCode, WorkflowState};
use clonewire_core::{QueryError, SubscriptionLimits};
use js_sys::{Array, Function, Reflect};
use serde::Serialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::WebSocket;

use crate::session::{Effects, Session};
use crate::views::ViewId;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(handler: &Function, ms: i32) -> JsValue;
    #[wasm_bindgen(js_name = clearTimeout)]
    fn clear_timeout(id: &JsValue);
}

/// The socket and timer handlers, made once per client.
struct Handlers {
    open: Closure<dyn FnMut(JsValue)>,
    message: Closure<dyn FnMut(JsValue)>,
    close: Closure<dyn FnMut(JsValue)>,
    /// Does nothing (a `close` always follows), but must exist: the `ws` package
    /// throws an error event that has no listener. Owned by JS, so it stays valid on
    /// sockets that outlive the client.
    error: Function,
    timer: Closure<dyn FnMut()>,
}

struct Inner {
    session: Session,
    url: String,
    constructor: Function,
    socket: Option<WebSocket>,
    handlers: Option<Handlers>,
    timer: Option<JsValue>,
    /// The front-end's dispatcher: gets the JSON text of each call's [`Effects`].
    dispatcher: Function,
    /// Reused for that text.
    buffer: Vec<u8>,
    /// The JS strings `"target"` and `"data"`, made once rather than per event.
    keys: (JsValue, JsValue),
}

type Shared = Rc<RefCell<Inner>>;

impl Inner {
    /// Stops listening to the current socket (late events from it are ignored).
    fn detach(&mut self) -> Option<WebSocket> {
        let socket = self.socket.take()?;
        socket.set_onopen(None);
        socket.set_onmessage(None);
        socket.set_onclose(None);
        // The error handler stays: a late error on a socket being closed must not throw.
        Some(socket)
    }

    /// Sends what the session queued.
    fn flush(&mut self) {
        let outgoing = self.session.take_outgoing();
        if let Some(socket) = &self.socket {
            for frame in outgoing {
                // A socket that is closing refuses to send; the session resends on the
                // next connection.
                let _ = socket.send_with_str(&frame);
            }
        }
    }

    /// True when `event` comes from the current socket.
    fn is_current(&self, event: &JsValue) -> bool {
        let target = Reflect::get(event, &self.keys.0).unwrap_or(JsValue::UNDEFINED);
        self.socket
            .as_ref()
            .is_some_and(|s| target.is_undefined() || AsRef::<JsValue>::as_ref(s) == &target)
    }
}

fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}

/// Sends queued frames, then hands what the page must be told to the dispatcher (one
/// call, none when there is nothing), with no borrow held, so the page's callbacks may
/// use the client (read data, open or close views) freely.
fn dispatch(shared: &Shared, effects: Effects) {
    let (dispatcher, text) = {
        let mut inner = shared.borrow_mut();
        inner.flush();
        if effects.is_empty() {
            return;
        }
        let mut buffer = std::mem::take(&mut inner.buffer);
        buffer.clear();
        effects.write_json(&mut buffer);
        let text = String::from_utf8(buffer).unwrap_or_default();
        (inner.dispatcher.clone(), text)
    };
    // An exception in the page's code is the page's; the client carries on.
    let _ = dispatcher.call1(&JsValue::NULL, &JsValue::from_str(&text));
    // Keep the buffer for the next call, unless a large snapshot grew it.
    if text.capacity() <= 1 << 16 {
        shared.borrow_mut().buffer = text.into_bytes();
    }
}

/// Opens a new socket. Fails only when the constructor throws (e.g. a bad URL).
fn connect(shared: &Shared) -> Result<(), JsValue> {
    let effects = {
        let mut inner = shared.borrow_mut();
        inner.timer = None;
        if let Some(old) = inner.detach() {
            let _ = old.close();
        }
        tell_time(&mut inner);
        let effects = inner.session.connecting();
        let args = Array::of1(&JsValue::from_str(&inner.url));
        let socket: WebSocket = Reflect::construct(&inner.constructor, &args)?.unchecked_into();
        if let Some(h) = &inner.handlers {
            socket.set_onopen(Some(h.open.as_ref().unchecked_ref()));
            socket.set_onmessage(Some(h.message.as_ref().unchecked_ref()));
            socket.set_onclose(Some(h.close.as_ref().unchecked_ref()));
            socket.set_onerror(Some(&h.error));
        }
        inner.socket = Some(socket);
        effects
    };
    dispatch(shared, effects);
    Ok(())
}

/// The connection was lost (or could not be made): schedule the next attempt.
fn lost(shared: &Shared) {
    let effects = {
        let mut inner = shared.borrow_mut();
        inner.detach();
        tell_time(&mut inner);
        let (effects, delay) = inner.session.closed(js_sys::Math::random());
        if let (Some(ms), Some(h)) = (delay, &inner.handlers) {
            let id = set_timeout(h.timer.as_ref().unchecked_ref(), ms.min(i32::MAX as u32) as i32);
            inner.timer = Some(id);
        }
        effects
    };
    dispatch(shared, effects);
}

/// Tells the session the page's time (for the link's deadlines).
fn tell_time(inner: &mut Inner) {
    inner.session.set_time(Millis::from_f64(js_sys::Date::now()));
}

/// A socket handler that acts on events from the current socket only, then dispatches.
fn socket_handler(
    shared: &Shared,
    act: impl Fn(&mut Inner, &JsValue) -> Effects + 'static,
) -> Closure<dyn FnMut(JsValue)> {
    let shared = shared.clone();
    Closure::new(move |event: JsValue| {
        let effects = {
            let mut inner = shared.borrow_mut();
            if !inner.is_current(&event) {
                return;
            }
            tell_time(&mut inner);
            act(&mut inner, &event)
        };
        dispatch(&shared, effects);
    })
}

fn make_handlers(shared: &Shared) -> Handlers {
    let on_open = socket_handler(shared, |inner, _| inner.session.opened());
    let on_message = socket_handler(shared, |inner, event| {
        let data = Reflect::get(event, &inner.keys.1).unwrap_or(JsValue::UNDEFINED);
        // Binary frames are not part of the protocol: the session counts them.
        let text = data.as_string().unwrap_or_default();
        inner.session.receive(&text)
    });
    let on_close = {
        let shared = shared.clone();
        Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
            if shared.borrow().is_current(&event) {
                lost(&shared);
            }
        })
    };
    let on_error = Closure::<dyn FnMut(JsValue)>::new(|_event: JsValue| {})
        .into_js_value()
        .unchecked_into::<Function>();
    let on_timer = {
        let shared = shared.clone();
        Closure::<dyn FnMut()>::new(move || {
            if connect(&shared).is_err() {
                lost(&shared);
            }
        })
    };
    Handlers {
        open: on_open,
        message: on_message,
        close: on_close,
        error: on_error,
        timer: on_timer,
    }
}

/// A query error as a JS `Error` named `QueryError`, with `line` and `column`.
fn query_error(error: &QueryError) -> JsValue {
    let js = js_sys::Error::new(&error.to_string());
    js.set_name("QueryError");
    let position = |n: Option<usize>| n.map_or(JsValue::NULL, |n| JsValue::from_f64(n as f64));
    let _ = Reflect::set(&js, &"line".into(), &position(error.line));
    let _ = Reflect::set(&js, &"column".into(), &position(error.column));
    let _ = Reflect::set(&js, &"detail".into(), &JsValue::from_str(&error.message));
    js.into()
}

fn number(options: &JsValue, key: &str) -> Option<u32> {
    Reflect::get(options, &JsValue::from_str(key))
        .ok()?
        .as_f64()
        .filter(|n| n.is_finite() && *n >= 0.0)
        .map(|n| n.min(f64::from(u32::MAX)) as u32)
}

/// Every workflow state's wire name, in the order docs/protocol.md lists them (exported
/// by the front-end as `workflowStates()`).
#[wasm_bindgen(js_name = workflowStates)]
pub fn workflow_states() -> Array {
    WorkflowState::ALL
        .iter()
        .map(|state| JsValue::from_str(state.as_str()))
        .collect()
}

/// `[type, workflow, topic]` of a `delta` or `snapshot` frame, `undefined` for any
/// other text: for meters that look at every frame (exported by the front-end as
/// `frameTopic()`).
#[wasm_bindgen(js_name = frameTopic)]
pub fn frame_topic(text: &str) -> JsValue {
    match fast::data_topic(text) {
        Some((kind, workflow, topic)) => Array::of3(
            &JsValue::from_str(kind),
            &JsValue::from_str(&workflow),
            &JsValue::from_str(&topic),
        )
        .into(),
        None => JsValue::UNDEFINED,
    }
}

/// A connection to a relay and the one store behind every view (wrapped by the JS
/// front-end's `Client`).
#[wasm_bindgen]
pub struct WasmClient {
    shared: Shared,
}

#[wasm_bindgen]
impl WasmClient {
    /// Makes a client for `url` using the WebSocket constructor `socket`. Options:
    /// `reconnectBaseMs`, `reconnectMaxMs`, `compression` (a compression the socket
    /// class inflates before frames reach the client, asked for in `subscribe`).
    /// `dispatcher` gets, once per call that has
    /// any, the JSON text of its view changes and events (`Effects::write_json`).
    /// Call `start()` to connect.
    #[wasm_bindgen(constructor)]
    pub fn new(url: String, socket: Function, options: JsValue, dispatcher: Function) -> WasmClient {
        let mut session = Session::new(SubscriptionLimits::default());
        if let (Some(base), max) = (
            number(&options, "reconnectBaseMs"),
            number(&options, "reconnectMaxMs"),
        ) {
            session.set_reconnect_delays(base, max.unwrap_or(30_000));
        }
        // The front-end's socket class inflates this compression (js/index.js).
        let compression = Reflect::get(&options, &JsValue::from_str("compression"))
            .ok()
            .and_then(|c| c.as_string());
        session.set_compression(compression);
        let shared = Rc::new(RefCell::new(Inner {
            session,
            url,
            constructor: socket,
            socket: None,
            handlers: None,
            timer: None,
            dispatcher,
            buffer: Vec::new(),
            keys: (JsValue::from_str("target"), JsValue::from_str("data")),
        }));
        let handlers = make_handlers(&shared);
        shared.borrow_mut().handlers = Some(handlers);
        WasmClient { shared }
    }

    /// Opens the first connection; throws if the WebSocket constructor does.
    pub fn start(&self) -> Result<(), JsValue> {
        connect(&self.shared)
    }

    /// Opens a view; throws a `QueryError` (with `line` and `column`) for a bad query.
    /// Its changes reach the dispatcher under its [`id`](WasmView::id).
    pub fn view(&self, name: &str, query: &str) -> Result<WasmView, JsValue> {
        let id = self
            .shared
            .borrow_mut()
            .session
            .add_view(name, query)
            .map_err(|e| query_error(&e))?;
        dispatch(&self.shared, Effects::default());
        Ok(WasmView {
            shared: self.shared.clone(),
            id,
        })
    }

    /// The inspector's report as JSON text.
    pub fn inspect(&self) -> String {
        to_json(&self.shared.borrow().session.inspect())
    }

    /// Every workflow with its state and schema, as JSON text.
    pub fn workflows(&self) -> String {
        to_json(&self.shared.borrow().session.workflows())
    }

    /// The connection's state: `connecting`, `open`, `reconnecting` or `closed`.
    pub fn status(&self) -> String {
        to_json(&self.shared.borrow().session.status())
            .trim_matches('"')
            .to_owned()
    }

    /// Closes the connection for good; views keep their last data.
    pub fn close(&self) {
        let effects = {
            let mut inner = self.shared.borrow_mut();
            if let Some(timer) = inner.timer.take() {
                clear_timeout(&timer);
            }
            if let Some(socket) = inner.detach() {
                let _ = socket.close_with_code(CloseCode::Normal.code());
            }
            // Dropping the handlers ends the cycle that kept the client alive; a
            // handler still running is freed when it returns.
            inner.handlers = None;
            inner.session.close()
        };
        dispatch(&self.shared, effects);
    }
}

/// One view over the client's store (wrapped by the JS front-end's `View`).
#[wasm_bindgen]
pub struct WasmView {
    shared: Shared,
    id: ViewId,
}

#[wasm_bindgen]
impl WasmView {
    /// The view's id, as the dispatcher's text names it.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The view's data, `{"workflows": {...}}`, as JSON text (`null` once closed).
    pub fn data(&self) -> String {
        let mut inner = self.shared.borrow_mut();
        match inner.session.view_data(self.id) {
            Some(value) => to_json(&value),
            None => "null".to_owned(),
        }
    }

    /// The view's normalized query (empty once closed).
    pub fn query(&self) -> String {
        self.shared
            .borrow()
            .session
            .view_query(self.id)
            .unwrap_or_default()
    }

    /// Replaces the query; throws a `QueryError` and keeps the old one when it is bad.
    #[wasm_bindgen(js_name = setQuery)]
    pub fn set_query(&self, query: &str) -> Result<(), JsValue> {
        let effects = self
            .shared
            .borrow_mut()
            .session
            .set_view_query(self.id, query)
            .map_err(|e| query_error(&e))?;
        dispatch(&self.shared, effects);
        Ok(())
    }

    /// Closes the view: no more callbacks, and the merged query shrinks.
    pub fn close(&self) {
        self.shared.borrow_mut().session.remove_view(self.id);
        dispatch(&self.shared, Effects::default());
    }
}
