//! Signed playback tokens: JWTs (RFC 7519) a customer's backend signs with a signing key's
//! private half (RS256 or ES256) to let one viewer play one `signed` playback id.
//!
//! The header's `kid` names the signing key, whose stored public key verifies the signature;
//! the algorithm is pinned to the one the key was made for. Claims: `sub` = the playback id,
//! `aud` = what is played ([`PlaybackAudience`]), `exp` required, `nbf` honoured. A deleted
//! signing key verifies nothing, so deleting it revokes every token it signed.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sluice_storage::{Db, SigningAlgorithm};

use crate::auth::{jwt_failure, JWT_LEEWAY_SECS};
use crate::error::ApiError;

/// What a playback token lets its holder fetch. Each is also accepted by Mux's one-letter
/// name (`v`, `t`, `s`, `g`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlaybackAudience {
    /// Playlists and segments.
    #[serde(alias = "v")]
    Video,
    /// Thumbnails.
    #[serde(alias = "t")]
    Thumbnail,
    /// Storyboards: the WebVTT and its sprite.
    #[serde(alias = "s")]
    Storyboard,
    /// Animated previews (GIF, WebP).
    #[serde(alias = "g")]
    Animated,
}

impl PlaybackAudience {
    fn as_str(self) -> &'static str {
        match self {
            Self::Video => "video",
            Self::Thumbnail => "thumbnail",
            Self::Storyboard => "storyboard",
            Self::Animated => "animated",
        }
    }
}

/// `sub` and `aud` are required; they are optional here only because `jsonwebtoken` reads the
/// claims before it checks the required ones, and a missing claim should be named as such
/// rather than reported as malformed claims.
#[derive(Deserialize)]
struct PlaybackClaims {
    sub: Option<String>,
    aud: Option<PlaybackAudience>,
}

fn forbidden(message: impl Into<String>) -> ApiError {
    ApiError::Forbidden(message.into())
}

fn jwt_algorithm(algorithm: SigningAlgorithm) -> Algorithm {
    match algorithm {
        SigningAlgorithm::ES256 => Algorithm::ES256,
        SigningAlgorithm::RS256 => Algorithm::RS256,
    }
}

/// The signing key (`kid`) and algorithm a playback token's header names, read before anything
/// in it is trusted: the front end of playback token checking that any viewer reaches.
pub fn claimed_signing_key(token: &str) -> Result<(String, Algorithm), ApiError> {
    let header =
        jsonwebtoken::decode_header(token).map_err(|_| forbidden("malformed playback token"))?;
    let kid = header
        .kid
        .ok_or_else(|| forbidden("playback token has no kid naming its signing key"))?;
    Ok((kid, header.alg))
}

/// Checks that `token` lets its holder fetch `audience` of `playback_id`; a refusal is
/// [`ApiError::Forbidden`] saying why.
pub async fn verify(
    db: &Db,
    token: &str,
    playback_id: &str,
    audience: PlaybackAudience,
) -> Result<(), ApiError> {
    let (kid, alg) = claimed_signing_key(token)?;
    let key = db
        .get_signing_key(&kid)
        .await?
        .ok_or_else(|| forbidden("playback token's signing key does not exist or was deleted"))?;
    let algorithm = jwt_algorithm(key.algorithm);
    if alg != algorithm {
        return Err(forbidden(format!(
            "playback token must be signed {algorithm:?}, the algorithm of its signing key"
        )));
    }
    let decoding_key = match key.algorithm {
        SigningAlgorithm::ES256 => DecodingKey::from_ec_pem(key.public_key_pem.as_bytes()),
        SigningAlgorithm::RS256 => DecodingKey::from_rsa_pem(key.public_key_pem.as_bytes()),
    }
    .map_err(ApiError::internal)?;
    let mut validation = Validation::new(algorithm);
    validation.leeway = JWT_LEEWAY_SECS;
    validation.validate_nbf = true;
    // `aud` is checked below against the enum, which also names what was expected.
    validation.validate_aud = false;
    validation.set_required_spec_claims(&["exp", "sub", "aud"]);
    let claims = jsonwebtoken::decode::<PlaybackClaims>(token, &decoding_key, &validation)
        .map_err(|error| match error.kind() {
            jsonwebtoken::errors::ErrorKind::Json(_) => forbidden(
                "playback token claims are invalid: sub must be a playback id and aud one of \
                 video, thumbnail, storyboard, animated",
            ),
            kind => forbidden(format!("playback {}", jwt_failure(kind))),
        })?
        .claims;
    // Both are present: `set_required_spec_claims` above refused the token otherwise.
    let (Some(sub), Some(aud)) = (claims.sub, claims.aud) else {
        return Err(forbidden("playback token lacks its sub or aud claim"));
    };
    if sub != playback_id {
        return Err(forbidden("playback token is for another playback id"));
    }
    if aud != audience {
        return Err(forbidden(format!(
            "playback token is for {}, not {}",
            aud.as_str(),
            audience.as_str()
        )));
    }
    Ok(())
}
