//! Client frames: decoding never panics, and what decodes re-encodes to a frame that
//! decodes to the same message.
#![no_main]

use clonewire_core::protocol::client::ClientMessage;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(message) = ClientMessage::decode(text) {
        let again = serde_json::to_string(&message).expect("encodes");
        assert_eq!(ClientMessage::decode(&again).as_ref(), Ok(&message), "{again}");
    }
});
