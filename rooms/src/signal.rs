//! LiveKit's signal messages on the wire: `SignalRequest` in, `SignalResponse` out, prost
//! encoded in binary WebSocket frames, with the limits that keep one client from spending
//! more than its share. The types are the `livekit-protocol` crate's.

use livekit_protocol as proto;
use prost::Message;

pub use proto::signal_request::Message as Request;
pub use proto::signal_response::Message as Response;

/// The largest signal message taken, in bytes: an SDP offer with every media section a client
/// may use is a few tens of KiB.
pub const MAX_SIGNAL_BYTES: usize = 256 * 1024;
/// The most media sections (`m=` lines) an offer may have.
pub const MAX_MEDIA_SECTIONS: usize = 32;

/// Why a client's signal message was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignalError {
    #[error("signal message of {0} bytes is larger than {MAX_SIGNAL_BYTES}")]
    TooLarge(usize),
    #[error("malformed signal message: {0}")]
    Malformed(String),
    #[error("empty signal message")]
    Empty,
}

/// Decodes one `SignalRequest` from a binary WebSocket frame.
pub fn decode_request(bytes: &[u8]) -> Result<Request, SignalError> {
    if bytes.len() > MAX_SIGNAL_BYTES {
        return Err(SignalError::TooLarge(bytes.len()));
    }
    proto::SignalRequest::decode(bytes)
        .map_err(|e| SignalError::Malformed(e.to_string()))?
        .message
        .ok_or(SignalError::Empty)
}

/// Encodes one `SignalResponse` for a binary WebSocket frame.
pub fn encode_response(message: Response) -> Vec<u8> {
    proto::SignalResponse {
        message: Some(message),
    }
    .encode_to_vec()
}

/// The number of media sections in an SDP.
pub fn media_sections(sdp: &str) -> usize {
    sdp.lines().filter(|line| line.starts_with("m=")).count()
}

/// The ids of an SDP's media sections (`a=mid:`), in order.
pub fn media_ids(sdp: &str) -> Vec<&str> {
    sdp.lines()
        .filter_map(|line| line.trim_end().strip_prefix("a=mid:"))
        .collect()
}

/// A leave message: the server ends the participant's connection for `reason`, telling the SDK
/// to reconnect (a full rejoin) or to stay disconnected.
pub fn leave(reason: proto::DisconnectReason, reconnect: bool) -> Response {
    let action = if reconnect {
        proto::leave_request::Action::Reconnect
    } else {
        proto::leave_request::Action::Disconnect
    };
    Response::Leave(proto::LeaveRequest {
        can_reconnect: reconnect,
        reason: reason as i32,
        action: action as i32,
        regions: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(message: Request) -> Vec<u8> {
        proto::SignalRequest {
            message: Some(message),
        }
        .encode_to_vec()
    }

    #[test]
    fn a_ping_and_an_add_track_request_decode() {
        assert_eq!(
            decode_request(&encoded(Request::Ping(42))),
            Ok(Request::Ping(42))
        );
        let add = Request::AddTrack(proto::AddTrackRequest {
            cid: "cam".into(),
            name: "camera".into(),
            r#type: proto::TrackType::Video as i32,
            width: 1280,
            height: 720,
            ..Default::default()
        });
        assert_eq!(decode_request(&encoded(add.clone())), Ok(add));
    }

    #[test]
    fn every_split_of_a_message_is_refused_or_decodes_without_panicking() {
        let bytes = encoded(Request::Offer(proto::SessionDescription {
            r#type: "offer".into(),
            sdp: "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n".into(),
            id: 3,
            ..Default::default()
        }));
        for cut in 0..bytes.len() {
            // A prefix is either malformed or a shorter valid message; it never panics.
            let _ = decode_request(&bytes[..cut]);
        }
        assert!(decode_request(&bytes).is_ok());
    }

    #[test]
    fn garbage_oversized_and_empty_messages_are_refused() {
        assert!(matches!(
            decode_request(&[0xff, 0xff, 0xff]),
            Err(SignalError::Malformed(_))
        ));
        assert_eq!(decode_request(&[]), Err(SignalError::Empty));
        let big = vec![0u8; MAX_SIGNAL_BYTES + 1];
        assert_eq!(
            decode_request(&big),
            Err(SignalError::TooLarge(MAX_SIGNAL_BYTES + 1))
        );
    }

    #[test]
    fn media_sections_are_counted() {
        assert_eq!(
            media_sections("v=0\r\nm=audio 9 x\r\na=mid:0\r\nm=video 9 x\r\nm=application 9 x\r\n"),
            3
        );
        assert_eq!(
            media_ids("m=audio 9 x\r\na=mid:0\r\nm=video 9 x\r\na=mid:v1\r\n"),
            ["0", "v1"]
        );
    }
}
