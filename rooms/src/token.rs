//! Room access tokens in LiveKit's format, so the tokens apps mint with `livekit-server-sdk`
//! (or with `POST /v1/rooms/{id}/tokens`) join Sluice rooms unchanged.
//!
//! A token is an HS256 JWT signed with an API key's secret: `iss` names the key, `sub` is the
//! participant's identity, `name` and `metadata` describe them, and the `video` grant says which
//! room (by name) they may join and what they may do there. A grant's missing `canPublish`,
//! `canSubscribe` or `canPublishData` means allowed, as LiveKit reads it.
//!
//! Checking is two steps with no I/O: [`claimed_api_key`] reads `iss` from the untrusted token
//! (so the caller can look that key's secret up), then [`verify`] checks the signature with the
//! secret, pins the algorithm to HS256 (`alg: none` and key confusion are refused), requires
//! `exp`, honours `nbf`, and returns the [`Grant`].

use std::collections::HashMap;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
const LEEWAY_S: u64 = 30;
/// Longest token accepted, in bytes (a URL query parameter; real ones are well under 2 KiB).
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Longest participant identity, name or room name, in bytes.
pub const MAX_NAME_BYTES: usize = 256;
/// Longest participant metadata, in bytes (LiveKit's limit is 64 KiB per room; a participant's
/// is kept small as it is sent to every other participant on each update).
pub const MAX_METADATA_BYTES: usize = 16 * 1024;

/// Why a token was refused; the message is safe to show the client.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("access token missing")]
    Missing,
    #[error("access token malformed: {0}")]
    Malformed(String),
    #[error("access token names an unknown or revoked API key")]
    UnknownKey,
    #[error("access token signature invalid")]
    BadSignature,
    #[error("access token expired")]
    Expired,
    #[error("access token not valid yet")]
    NotYetValid,
    #[error("access token grants no room join")]
    NoRoomJoin,
    #[error("access token {0}")]
    Invalid(&'static str),
}

/// The `video` grant of a token, in LiveKit's camelCase field names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VideoGrant {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub room: String,
    #[serde(default)]
    pub room_join: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub can_publish: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub can_subscribe: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub can_publish_data: Option<bool>,
    /// Sources the participant may publish (`camera`, `microphone`, `screen_share`,
    /// `screen_share_audio`); empty allows all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub can_publish_sources: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hidden: bool,
}

/// The claims of a room access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The API key whose secret signed it.
    pub iss: String,
    /// The participant's identity, unique in a room.
    #[serde(default)]
    pub sub: String,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub metadata: String,
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub attributes: HashMap<String, String>,
    #[serde(default)]
    pub video: VideoGrant,
}

/// What a verified token lets its holder do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub api_key_id: String,
    pub room: String,
    pub identity: String,
    pub name: String,
    pub metadata: String,
    pub can_publish: bool,
    pub can_subscribe: bool,
    pub can_publish_data: bool,
    /// LiveKit's source names; empty allows every source.
    pub can_publish_sources: Vec<String>,
    pub hidden: bool,
    /// Seconds since the epoch when the token expires.
    pub expires_at: u64,
}

/// The API key a token claims to be signed by (its `iss`), read without checking anything
/// else: the caller looks the key's secret up and then calls [`verify`].
pub fn claimed_api_key(token: &str) -> Result<String, TokenError> {
    if token.is_empty() {
        return Err(TokenError::Missing);
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::Malformed(format!(
            "longer than {MAX_TOKEN_BYTES} bytes"
        )));
    }
    let mut validation = Validation::new(Algorithm::HS256);
    validation.insecure_disable_signature_validation();
    validation.validate_exp = false;
    validation.required_spec_claims.clear();
    let data = jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(&[]), &validation)
        .map_err(|e| TokenError::Malformed(e.to_string()))?;
    if data.claims.iss.is_empty() {
        return Err(TokenError::Invalid("has no iss (API key)"));
    }
    Ok(data.claims.iss)
}

/// Checks `token` against the secret of the key it names and returns its grant.
pub fn verify(token: &str, secret: &[u8]) -> Result<Grant, TokenError> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = LEEWAY_S;
    validation.validate_nbf = true;
    validation.set_required_spec_claims(&["exp", "iss"]);
    let claims =
        jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(secret), &validation)
            .map_err(|e| match e.kind() {
                ErrorKind::InvalidSignature | ErrorKind::InvalidAlgorithm => {
                    TokenError::BadSignature
                }
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::ImmatureSignature => TokenError::NotYetValid,
                _ => TokenError::Malformed(e.to_string()),
            })?
            .claims;
    let video = &claims.video;
    if !video.room_join {
        return Err(TokenError::NoRoomJoin);
    }
    if video.room.is_empty() {
        return Err(TokenError::Invalid("grant names no room"));
    }
    if claims.sub.is_empty() {
        return Err(TokenError::Invalid("has no sub (participant identity)"));
    }
    if [&claims.sub, &claims.name, &video.room]
        .iter()
        .any(|text| text.len() > MAX_NAME_BYTES)
    {
        return Err(TokenError::Invalid("identity, name or room is too long"));
    }
    if claims.metadata.len() > MAX_METADATA_BYTES {
        return Err(TokenError::Invalid("metadata is too long"));
    }
    Ok(Grant {
        api_key_id: claims.iss,
        room: video.room.clone(),
        identity: claims.sub,
        name: claims.name,
        metadata: claims.metadata,
        can_publish: video.can_publish.unwrap_or(true),
        can_subscribe: video.can_subscribe.unwrap_or(true),
        can_publish_data: video.can_publish_data.unwrap_or(true),
        can_publish_sources: video.can_publish_sources.clone(),
        hidden: video.hidden,
        expires_at: claims.exp,
    })
}

/// Signs `claims` with `secret` (HS256), as `livekit-server-sdk`'s `AccessToken` does.
pub fn sign(claims: &Claims, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .expect("HS256 signing of serializable claims cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"secret-of-the-key";

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    fn claims(room: &str) -> Claims {
        Claims {
            iss: "ak_key".into(),
            sub: "alice".into(),
            exp: now() + 600,
            nbf: None,
            name: "Alice".into(),
            metadata: String::new(),
            attributes: HashMap::new(),
            video: VideoGrant {
                room: room.into(),
                room_join: true,
                ..VideoGrant::default()
            },
        }
    }

    #[test]
    fn a_signed_token_gives_its_grant_with_livekits_defaults() {
        let token = sign(&claims("standup"), SECRET);
        assert_eq!(claimed_api_key(&token).unwrap(), "ak_key");
        let grant = verify(&token, SECRET).unwrap();
        assert_eq!(grant.room, "standup");
        assert_eq!(grant.identity, "alice");
        assert!(grant.can_publish && grant.can_subscribe && grant.can_publish_data);
    }

    #[test]
    fn a_token_minted_by_livekit_server_sdk_verifies() {
        // Made with livekit-server-sdk 2.x: new AccessToken("ak_key", "secret-of-the-key",
        // {identity: "bob", ttl: ...}).addGrant({roomJoin: true, room: "r1", canPublish: false})
        // (the same claim layout; exp far ahead so the vector keeps working).
        let claims = serde_json::json!({
            "video": {"roomJoin": true, "room": "r1", "canPublish": false},
            "iss": "ak_key", "sub": "bob", "exp": 4_102_444_800u64, "nbf": 0, "jti": "bob"
        });
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        let grant = verify(&token, SECRET).unwrap();
        assert_eq!(grant.identity, "bob");
        assert!(!grant.can_publish);
        assert!(grant.can_subscribe);
    }

    #[test]
    fn wrong_secret_expired_and_unsigned_tokens_are_refused() {
        let token = sign(&claims("r"), SECRET);
        assert_eq!(verify(&token, b"other"), Err(TokenError::BadSignature));

        let mut expired = claims("r");
        expired.exp = now() - 3600;
        assert_eq!(
            verify(&sign(&expired, SECRET), SECRET),
            Err(TokenError::Expired)
        );

        let mut early = claims("r");
        early.nbf = Some(now() + 3600);
        assert_eq!(
            verify(&sign(&early, SECRET), SECRET),
            Err(TokenError::NotYetValid)
        );

        // alg: none, with the same claims.
        let payload = token.split('.').nth(1).unwrap();
        let unsigned = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
        assert!(verify(&unsigned, SECRET).is_err());
    }

    #[test]
    fn a_grant_without_room_join_or_identity_is_refused() {
        let mut no_join = claims("r");
        no_join.video.room_join = false;
        assert_eq!(
            verify(&sign(&no_join, SECRET), SECRET),
            Err(TokenError::NoRoomJoin)
        );
        let mut no_sub = claims("r");
        no_sub.sub.clear();
        assert!(matches!(
            verify(&sign(&no_sub, SECRET), SECRET),
            Err(TokenError::Invalid(_))
        ));
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        for token in [
            "",
            "a",
            "a.b",
            "a.b.c",
            "....",
            &"x".repeat(MAX_TOKEN_BYTES + 1),
        ] {
            assert!(claimed_api_key(token).is_err(), "{token:?}");
            assert!(verify(token, SECRET).is_err(), "{token:?}");
        }
    }
}
