//! Server-made identifiers and secrets, and the typed ids of the records the media plane
//! passes around ([`LiveStreamId`], [`SessionId`], [`AssetId`], [`UploadId`],
//! [`SimulcastTargetId`], [`TrackId`], [`RoomId`], [`RoomSessionId`], [`RoomCompositeId`]): the
//! model's records and the `Db` methods that take them cannot mix one kind up with another, and
//! an id from outside (a URL path, a job's subject) is checked ([`LiveStreamId::parse`]: its
//! prefix, then only `[A-Za-z0-9]`) before it names anything. They serialize as the plain
//! string and are stored as text, so the API, events and the schema are unchanged; they read as
//! `&str` wherever a plain string is asked for (object keys, logs, JSON filters).
//!
//! Everything is drawn from `[A-Za-z0-9]`, so ids are safe in URLs, object keys and RTMP stream
//! names. `rand::thread_rng` is a cryptographically secure generator (ChaCha12 seeded from the
//! OS), which secrets and unguessable playback ids require.

use std::fmt;
use std::ops::Deref;

use rand::distributions::Alphanumeric;
use rand::Rng;
use serde::{Deserialize, Serialize};

/// Random characters after an id's prefix: 20 alphanumerics are about 119 bits.
const ID_RANDOM_LEN: usize = 20;
/// Length of API key secrets and stream keys: about 238 bits.
const SECRET_LEN: usize = 40;
/// Length of playback ids: public but unguessable, about 143 bits.
const PLAYBACK_ID_LEN: usize = 24;

pub const API_KEY_PREFIX: &str = "ak_";
pub const LIVE_STREAM_PREFIX: &str = "ls_";
pub const SESSION_PREFIX: &str = "ses_";
pub const EVENT_PREFIX: &str = "evt_";
pub const WEBHOOK_ENDPOINT_PREFIX: &str = "wh_";
pub const WEBHOOK_DELIVERY_PREFIX: &str = "whd_";
/// Marks webhook signing secrets, so one pasted in the wrong place is recognisable.
pub const WEBHOOK_SECRET_PREFIX: &str = "whsec_";
pub const SIGNING_KEY_PREFIX: &str = "sk_";
pub const JOB_PREFIX: &str = "job_";
pub const ASSET_PREFIX: &str = "asset_";
pub const UPLOAD_PREFIX: &str = "upload_";
pub const SIMULCAST_TARGET_PREFIX: &str = "st_";
pub const TRACK_PREFIX: &str = "track_";
pub const ROOM_PREFIX: &str = "room_";
pub const ROOM_SESSION_PREFIX: &str = "rsess_";
pub const ROOM_COMPOSITE_PREFIX: &str = "rcmp_";

fn random_alphanumeric(len: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// A record id such as `ls_3kP9…`.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}{}", random_alphanumeric(ID_RANDOM_LEN))
}

/// An API key secret or RTMP stream key.
pub fn new_secret() -> String {
    random_alphanumeric(SECRET_LEN)
}

pub fn new_playback_id() -> String {
    random_alphanumeric(PLAYBACK_ID_LEN)
}

/// Longest id accepted from outside.
const MAX_ID_LEN: usize = 64;

/// Why a string from outside is not an id of the kind asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a {kind} id (expected `{prefix}` then letters and digits)")]
pub struct InvalidId {
    pub kind: &'static str,
    pub prefix: &'static str,
}

/// Defines a typed id: a `String` that only this module makes (new, or read back from the
/// database) or that passed [`parse`](LiveStreamId::parse).
macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// A new random id.
            pub(crate) fn generate() -> Self {
                $name(new_id($prefix))
            }

            /// An id read back from the database, as it was written.
            pub(crate) fn stored(id: String) -> Self {
                $name(id)
            }

            /// Checks an id that came from outside.
            pub fn parse(text: &str) -> Result<Self, InvalidId> {
                let valid = text.len() <= MAX_ID_LEN
                    && text.strip_prefix($prefix).is_some_and(|rest| {
                        !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric())
                    });
                match valid {
                    true => Ok($name(text.to_owned())),
                    false => Err(InvalidId {
                        kind: $kind,
                        prefix: $prefix,
                    }),
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        /// Read back from a JSON document (an asset's input); the prefix is checked.
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                $name::parse(&text).map_err(serde::de::Error::custom)
            }
        }

        impl Deref for $name {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl From<&$name> for String {
            fn from(id: &$name) -> String {
                id.0.clone()
            }
        }

        /// Queries compare it as the text column it is stored in.
        impl From<&$name> for sea_orm::Value {
            fn from(id: &$name) -> Self {
                id.0.clone().into()
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }

        impl PartialEq<$name> for &str {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }
    };
}

typed_id!(
    /// A live stream's id: `ls_…`.
    LiveStreamId,
    LIVE_STREAM_PREFIX,
    "live stream"
);
typed_id!(
    /// A session's id: `ses_…`.
    SessionId,
    SESSION_PREFIX,
    "session"
);
typed_id!(
    /// An asset's id: `asset_…`.
    AssetId,
    ASSET_PREFIX,
    "asset"
);
typed_id!(
    /// A direct upload's id: `upload_…`.
    UploadId,
    UPLOAD_PREFIX,
    "upload"
);
typed_id!(
    /// A simulcast target's id: `st_…`.
    SimulcastTargetId,
    SIMULCAST_TARGET_PREFIX,
    "simulcast target"
);
typed_id!(
    /// A generated subtitles track's (a transcript's) id: `track_…`.
    TrackId,
    TRACK_PREFIX,
    "track"
);
typed_id!(
    /// A real-time room's id: `room_…`.
    RoomId,
    ROOM_PREFIX,
    "room"
);
typed_id!(
    /// A room session's id (one run of a room, from its first participant to its close):
    /// `rsess_…`.
    RoomSessionId,
    ROOM_SESSION_PREFIX,
    "room session"
);
typed_id!(
    /// A room composite's id (a room's participants composed onto one canvas and published to a
    /// live stream): `rcmp_…`.
    RoomCompositeId,
    ROOM_COMPOSITE_PREFIX,
    "room composite"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_from_outside_are_checked_for_their_prefix_and_characters() {
        let made = LiveStreamId::generate();
        assert_eq!(LiveStreamId::parse(&made).unwrap(), made);
        for bad in [
            "",
            "ls_",
            "ses_abc",
            "ls_a/b",
            "ls_../x",
            "LS_abc",
            &"ls_a".repeat(40),
        ] {
            assert!(LiveStreamId::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            SessionId::parse("ls_abc").unwrap_err().to_string(),
            "not a session id (expected `ses_` then letters and digits)"
        );
    }

    #[test]
    fn a_typed_id_serializes_and_compares_as_its_string() {
        let id = AssetId::parse("asset_abc123").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"asset_abc123\"");
        assert_eq!(id, "asset_abc123");
        assert_eq!("asset_abc123".to_owned(), id);
        assert_eq!(&*id, "asset_abc123");
    }

    #[test]
    fn ids_carry_their_prefix_and_only_url_safe_characters() {
        let id = new_id(LIVE_STREAM_PREFIX);
        assert!(id.starts_with("ls_"));
        assert_eq!(id.len(), 3 + ID_RANDOM_LEN);
        let secret = new_secret();
        assert!(secret.len() >= 32);
        assert!(secret.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(new_playback_id(), new_playback_id());
    }
}
