//! Suite-link frames: PUB messages and REP replies from a suite never panic the
//! decoder, and what decodes re-encodes to frames that decode the same.
#![no_main]

use clonewire_core::protocol::suite::{
    decode_reply, GetReply, HashesReply, HelloReply, PubMessage, ReplayReply, SnapshotReply, VerifyReply,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte says how long frame 0 is; the rest is the body.
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let split = (n as usize).min(rest.len());
    let (topic, body) = rest.split_at(split);
    if let Ok(message) = PubMessage::decode(topic, body) {
        let (t, b) = message.encode();
        assert_eq!(PubMessage::decode(&t, &b).as_ref(), Ok(&message));
    }
    // Every reply type from the whole input as one REP frame.
    let _ = decode_reply::<HelloReply>("hello reply", rest);
    let _ = decode_reply::<SnapshotReply>("snapshot reply", rest);
    let _ = decode_reply::<VerifyReply>("verify reply", rest);
    let _ = decode_reply::<ReplayReply>("replay reply", rest);
    let _ = decode_reply::<HashesReply>("hashes reply", rest);
    let _ = decode_reply::<GetReply>("get reply", rest);
});
