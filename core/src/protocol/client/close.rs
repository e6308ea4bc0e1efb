//! WebSocket close codes the client link uses (docs/protocol.md, Client link › Close
//! codes), named once so that no side writes bare numbers.

/// A WebSocket close code (RFC 6455, section 7.4.1) the relay or the client uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CloseCode {
    /// 1000: the connection is done (the client closes with it too).
    Normal,
    /// 1001: the relay is shutting down.
    GoingAway,
    /// 1006: the connection dropped without a close frame; never sent, only seen.
    Abnormal,
    /// 1008: a token expired, too many malformed frames, or a send queue that stayed
    /// full.
    PolicyViolation,
    /// 1009: a frame over the relay's size limit.
    MessageTooBig,
}

impl CloseCode {
    /// The number on the wire.
    pub const fn code(self) -> u16 {
        match self {
            CloseCode::Normal => 1000,
            CloseCode::GoingAway => 1001,
            CloseCode::Abnormal => 1006,
            CloseCode::PolicyViolation => 1008,
            CloseCode::MessageTooBig => 1009,
        }
    }

    /// The named code for a number, if it is one of these.
    pub fn from_code(code: u16) -> Option<CloseCode> {
        [
            CloseCode::Normal,
            CloseCode::GoingAway,
            CloseCode::Abnormal,
            CloseCode::PolicyViolation,
            CloseCode::MessageTooBig,
        ]
        .into_iter()
        .find(|c| c.code() == code)
    }
}

impl From<CloseCode> for u16 {
    fn from(code: CloseCode) -> u16 {
        code.code()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_standard_numbers_and_read_back() {
        assert_eq!(u16::from(CloseCode::Normal), 1000);
        assert_eq!(CloseCode::MessageTooBig.code(), 1009);
        for code in [1000, 1001, 1006, 1008, 1009] {
            assert_eq!(CloseCode::from_code(code).map(CloseCode::code), Some(code));
        }
        assert_eq!(CloseCode::from_code(1011), None);
    }
}
