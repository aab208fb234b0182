//! The request headers of the tus 1.0.0 resumable upload protocol
//! (<https://tus.io/protocols/resumable-upload>), read and checked: `Tus-Resumable`,
//! `Upload-Offset`, `Upload-Length`, `Upload-Metadata`, `Upload-Checksum`, and the
//! `Upload-Expires` date. Pure functions; the upload routes in `uploads` use them.

use axum::http::HeaderMap;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chrono::{DateTime, Utc};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// The protocol version served, and the only one accepted in `Tus-Resumable`.
pub const TUS_VERSION: &str = "1.0.0";
/// The extensions served, as `Tus-Extension` lists them.
pub const TUS_EXTENSIONS: &str = "creation,checksum,expiration,termination";
/// The checksum algorithms `Upload-Checksum` may name, as `Tus-Checksum-Algorithm` lists them.
pub const CHECKSUM_ALGORITHMS: &str = "sha1,sha256";
/// The only content type a `PATCH` may carry.
pub const PATCH_CONTENT_TYPE: &str = "application/offset+octet-stream";
/// Longest `Upload-Metadata` kept, in bytes.
pub const MAX_METADATA_BYTES: usize = 4096;

pub const TUS_RESUMABLE: &str = "tus-resumable";
pub const TUS_VERSION_HEADER: &str = "tus-version";
pub const TUS_EXTENSION: &str = "tus-extension";
pub const TUS_MAX_SIZE: &str = "tus-max-size";
pub const TUS_CHECKSUM_ALGORITHM: &str = "tus-checksum-algorithm";
pub const UPLOAD_OFFSET: &str = "upload-offset";
pub const UPLOAD_LENGTH: &str = "upload-length";
pub const UPLOAD_METADATA: &str = "upload-metadata";
pub const UPLOAD_CHECKSUM: &str = "upload-checksum";
pub const UPLOAD_EXPIRES: &str = "upload-expires";
pub const UPLOAD_DEFER_LENGTH: &str = "upload-defer-length";

/// Refuses a request that does not speak tus 1.0.0 (`412 Precondition Failed`).
pub fn require_resumable(headers: &HeaderMap) -> Result<(), ApiError> {
    match headers.get(TUS_RESUMABLE).map(|value| value.to_str()) {
        Some(Ok(TUS_VERSION)) => Ok(()),
        Some(_) => Err(ApiError::PreconditionFailed(format!(
            "Tus-Resumable: this server speaks tus {TUS_VERSION} only"
        ))),
        None => Err(ApiError::PreconditionFailed(format!(
            "the Tus-Resumable: {TUS_VERSION} header is required"
        ))),
    }
}

/// A header holding a byte count (`Upload-Offset`, `Upload-Length`, `Content-Length`): `None`
/// when absent, an error when it is not a plain non-negative decimal integer.
pub fn byte_count(headers: &HeaderMap, name: &str) -> Result<Option<i64>, ApiError> {
    let Some(value) = headers.get(name) else {
        return Ok(None);
    };
    let invalid = || ApiError::InvalidRequest(format!("{name}: must be a non-negative integer"));
    let text = value.to_str().map_err(|_| invalid())?;
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(invalid());
    }
    text.parse::<i64>().map(Some).map_err(|_| invalid())
}

/// `Upload-Metadata`, checked for form (comma-separated `key base64value` pairs, the value
/// optional, keys unique) and size, kept as sent.
pub fn metadata(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(UPLOAD_METADATA) else {
        return Ok(None);
    };
    let invalid = |why: &str| ApiError::InvalidRequest(format!("Upload-Metadata: {why}"));
    let text = value.to_str().map_err(|_| invalid("must be ASCII"))?.trim();
    if text.len() > MAX_METADATA_BYTES {
        return Err(invalid(&format!("longer than {MAX_METADATA_BYTES} bytes")));
    }
    if text.is_empty() {
        return Ok(None);
    }
    let mut keys = Vec::new();
    for pair in text.split(',') {
        let mut parts = pair.trim().split(' ');
        let key = parts.next().unwrap_or_default();
        if key.is_empty() {
            return Err(invalid("every pair needs a key"));
        }
        if keys.contains(&key) {
            return Err(invalid(&format!("key {key:?} is given twice")));
        }
        if let Some(encoded) = parts.next() {
            BASE64
                .decode(encoded)
                .map_err(|_| invalid(&format!("the value of {key:?} is not base64")))?;
        }
        if parts.next().is_some() {
            return Err(invalid("a pair is a key and one base64 value"));
        }
        keys.push(key);
    }
    Ok(Some(text.to_owned()))
}

/// An algorithm `Upload-Checksum` may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumAlgorithm {
    Sha1,
    Sha256,
}

/// A `PATCH`'s `Upload-Checksum`: the digest its body must have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checksum {
    pub algorithm: ChecksumAlgorithm,
    pub digest: Vec<u8>,
}

/// `Upload-Checksum: ALGORITHM BASE64DIGEST`; `None` when absent. An unknown algorithm is a
/// `400` as the checksum extension asks.
pub fn checksum(headers: &HeaderMap) -> Result<Option<Checksum>, ApiError> {
    let Some(value) = headers.get(UPLOAD_CHECKSUM) else {
        return Ok(None);
    };
    let invalid = |why: String| ApiError::InvalidRequest(format!("Upload-Checksum: {why}"));
    let text = value
        .to_str()
        .map_err(|_| invalid("must be ASCII".to_owned()))?;
    let (name, encoded) = text
        .trim()
        .split_once(' ')
        .ok_or_else(|| invalid("expected an algorithm and a base64 digest".to_owned()))?;
    let algorithm = match name.to_ascii_lowercase().as_str() {
        "sha1" => ChecksumAlgorithm::Sha1,
        "sha256" => ChecksumAlgorithm::Sha256,
        _ => {
            return Err(invalid(format!(
                "unsupported algorithm {name:?}; use one of {CHECKSUM_ALGORITHMS}"
            )))
        }
    };
    let digest = BASE64
        .decode(encoded.trim())
        .map_err(|_| invalid("the digest is not base64".to_owned()))?;
    let expected_len = match algorithm {
        ChecksumAlgorithm::Sha1 => 20,
        ChecksumAlgorithm::Sha256 => 32,
    };
    if digest.len() != expected_len {
        return Err(invalid(format!(
            "a {name} digest is {expected_len} bytes, this one {}",
            digest.len()
        )));
    }
    Ok(Some(Checksum { algorithm, digest }))
}

/// The running digest of a `PATCH` body, checked against its [`Checksum`] at the end.
pub enum ChecksumHasher {
    Sha1(Sha1),
    Sha256(Sha256),
}

impl ChecksumHasher {
    pub fn new(algorithm: ChecksumAlgorithm) -> Self {
        match algorithm {
            ChecksumAlgorithm::Sha1 => Self::Sha1(Sha1::new()),
            ChecksumAlgorithm::Sha256 => Self::Sha256(Sha256::new()),
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Self::Sha1(hasher) => hasher.update(bytes),
            Self::Sha256(hasher) => hasher.update(bytes),
        }
    }

    /// Whether what was hashed has `expected`'s digest.
    pub fn matches(self, expected: &Checksum) -> bool {
        let digest = match self {
            Self::Sha1(hasher) => hasher.finalize().to_vec(),
            Self::Sha256(hasher) => hasher.finalize().to_vec(),
        };
        digest == expected.digest
    }
}

/// An `Upload-Expires` value: an RFC 9110 HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub fn http_date(at: DateTime<Utc>) -> String {
    httpdate::fmt_http_date(at.into())
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn only_tus_1_0_0_is_resumable() {
        assert!(require_resumable(&headers(&[(TUS_RESUMABLE, "1.0.0")])).is_ok());
        for bad in [headers(&[]), headers(&[(TUS_RESUMABLE, "0.2.2")])] {
            assert!(matches!(
                require_resumable(&bad),
                Err(ApiError::PreconditionFailed(_))
            ));
        }
    }

    #[test]
    fn byte_counts_are_plain_non_negative_integers() {
        assert_eq!(byte_count(&headers(&[]), UPLOAD_OFFSET).unwrap(), None);
        assert_eq!(
            byte_count(&headers(&[(UPLOAD_OFFSET, "0")]), UPLOAD_OFFSET).unwrap(),
            Some(0)
        );
        assert_eq!(
            byte_count(&headers(&[(UPLOAD_LENGTH, "1048576")]), UPLOAD_LENGTH).unwrap(),
            Some(1_048_576)
        );
        for bad in ["-1", "+5", "1.5", "", " 7", "0x10", "99999999999999999999"] {
            let error = byte_count(&headers(&[(UPLOAD_OFFSET, bad)]), UPLOAD_OFFSET).unwrap_err();
            assert!(
                error.to_string().contains("upload-offset"),
                "{bad:?}: {error}"
            );
        }
    }

    #[test]
    fn metadata_pairs_must_be_keys_with_base64_values() {
        let good = "filename d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg==,is_confidential";
        assert_eq!(
            metadata(&headers(&[(UPLOAD_METADATA, good)])).unwrap(),
            Some(good.to_owned())
        );
        assert_eq!(metadata(&headers(&[])).unwrap(), None);
        for bad in [
            "filename not*base64",
            "a YQ==,a Yg==",
            ",x",
            "a YQ== extra",
            &"k ".repeat(3000),
        ] {
            assert!(
                metadata(&headers(&[(UPLOAD_METADATA, bad)])).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn checksums_name_a_known_algorithm_and_a_digest_of_its_size() {
        let sha1_of_abc = "qZk+NkcGgWq6PiVxeFDCbJzQ2J0=";
        let parsed = checksum(&headers(&[(
            UPLOAD_CHECKSUM,
            &format!("sha1 {sha1_of_abc}"),
        )]))
        .unwrap()
        .unwrap();
        assert_eq!(parsed.algorithm, ChecksumAlgorithm::Sha1);
        let mut hasher = ChecksumHasher::new(parsed.algorithm);
        hasher.update(b"a");
        hasher.update(b"bc");
        assert!(hasher.matches(&parsed));
        let mut other = ChecksumHasher::new(parsed.algorithm);
        other.update(b"abd");
        assert!(!other.matches(&parsed));

        let sha256 = BASE64.encode(Sha256::digest(b"abc"));
        let parsed = checksum(&headers(&[(UPLOAD_CHECKSUM, &format!("SHA256 {sha256}"))]))
            .unwrap()
            .unwrap();
        let mut hasher = ChecksumHasher::new(parsed.algorithm);
        hasher.update(b"abc");
        assert!(hasher.matches(&parsed));

        for bad in [
            format!("md5 {sha1_of_abc}"),
            "sha1".to_owned(),
            "sha1 !!!".to_owned(),
            format!("sha256 {sha1_of_abc}"),
        ] {
            let error = checksum(&headers(&[(UPLOAD_CHECKSUM, &bad)])).unwrap_err();
            assert!(matches!(error, ApiError::InvalidRequest(_)), "{bad}");
        }
    }

    #[test]
    fn expiry_dates_are_http_dates() {
        let at = DateTime::parse_from_rfc3339("1994-11-06T08:49:37.250Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(http_date(at), "Sun, 06 Nov 1994 08:49:37 GMT");
    }
}
