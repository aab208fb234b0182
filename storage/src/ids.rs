//! Server-made identifiers and secrets.
//!
//! Everything is drawn from `[A-Za-z0-9]`, so ids are safe in URLs, object keys and RTMP stream
//! names. `rand::thread_rng` is a cryptographically secure generator (ChaCha12 seeded from the
//! OS), which secrets and unguessable playback ids require.

use rand::distributions::Alphanumeric;
use rand::Rng;

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

#[cfg(test)]
mod tests {
    use super::*;

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
