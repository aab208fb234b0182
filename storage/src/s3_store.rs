//! [`S3Store`]: an [`ObjectStore`] on an S3-compatible bucket (AWS S3, MinIO, Ceph, R2, …).
//!
//! Every [`ObjectKey`] is stored under the configured key prefix of one bucket. Files above
//! [`MULTIPART_THRESHOLD`] go up as multipart uploads whose parts are streamed from the file
//! (never read whole) and which are aborted on any failure, so no orphaned parts are billed.
//! Copies stay inside the store (CopyObject, or UploadPartCopy above the 5 GiB limit of one
//! CopyObject). Requests are retried by the SDK in its standard mode: exponential backoff with
//! full jitter. [`S3Store::check`] is the startup health check: it turns a missing bucket, bad
//! credentials or an unreachable endpoint into a message that says which.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
use aws_credential_types::Credentials;
use aws_sdk_s3::config::{Region, RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};
use aws_sdk_s3::Client;
use aws_smithy_http_client::tls;
use aws_smithy_types::error::display::DisplayErrorContext;
use bytes::Bytes;
use tokio::io::AsyncWriteExt;

use crate::object_store::{InvalidKey, ObjectKey, ObjectStore, Playback, StoreError};

/// Files larger than this are uploaded in parts.
pub const MULTIPART_THRESHOLD: u64 = 16 * 1024 * 1024;
/// Size of one part of a multipart upload, unless the object is so large that 10 000 parts of
/// this size would not hold it (S3's limit), in which case parts grow to fit.
pub const MULTIPART_PART_SIZE: u64 = 8 * 1024 * 1024;
/// S3 allows at most this many parts in one multipart upload.
const MAX_PARTS: u64 = 10_000;
/// Largest object one CopyObject request may copy; larger ones are copied in parts.
const MAX_SINGLE_COPY: u64 = 5 * 1024 * 1024 * 1024;
/// Part size of a multipart copy (data never passes through this process, so parts can be big).
const COPY_PART_SIZE: u64 = 512 * 1024 * 1024;
/// Most keys one DeleteObjects request may name.
const DELETE_BATCH: usize = 1000;
/// Attempts per request, first included, before an error is returned.
const MAX_ATTEMPTS: u32 = 5;
/// Upper bound of the first retry delay; it doubles per attempt, jittered below the bound.
const INITIAL_BACKOFF: Duration = Duration::from_millis(200);
/// Cap of the retry delay.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Longest a TCP (and TLS) connection to the endpoint may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest the endpoint may take to start answering a request.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Region used when neither the configuration nor the AWS environment names one; S3-compatible
/// servers generally accept any region in signatures.
const FALLBACK_REGION: &str = "us-east-1";

/// Static credentials given in Sluice's configuration (else the standard AWS chain is used).
#[derive(Clone, PartialEq, Eq)]
pub struct S3Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

/// Where and how an [`S3Store`] reaches its bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Config {
    /// The bucket holding every object.
    pub bucket: String,
    /// Key prefix under which objects are stored (`sluice/prod` puts `assets/a1/x` at
    /// `sluice/prod/assets/a1/x`); `None` stores at the bucket's root.
    pub prefix: Option<ObjectKey>,
    /// Endpoint URL of an S3-compatible server; `None` = AWS_ENDPOINT_URL or AWS itself.
    pub endpoint: Option<String>,
    /// Region; `None` = AWS_REGION / the AWS profile, else `us-east-1`.
    pub region: Option<String>,
    /// Path-style addressing (`https://host/bucket/key`) instead of virtual-hosted
    /// (`https://bucket.host/key`); most self-hosted servers need it.
    pub force_path_style: bool,
    /// Static credentials; `None` = the standard AWS chain (AWS_ACCESS_KEY_ID and
    /// AWS_SECRET_ACCESS_KEY, the shared profile files, web identity, container or instance
    /// roles).
    pub credentials: Option<S3Credentials>,
    /// How viewers fetch segments.
    pub playback: Playback,
}

/// Why an `s3://` URL or an [`S3Config`] was refused, or the bucket cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct S3SetupError(String);

impl S3Config {
    /// The configuration named by `s3://BUCKET[/PREFIX]`, with every other setting at its
    /// default.
    pub fn from_url(url: &str) -> Result<S3Config, S3SetupError> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| S3SetupError(format!("storage URL {url:?} must start with s3://")))?;
        let (bucket, prefix) = match rest.split_once('/') {
            Some((bucket, prefix)) => (bucket, prefix.trim_end_matches('/')),
            None => (rest, ""),
        };
        if !valid_bucket_name(bucket) {
            return Err(S3SetupError(format!(
                "storage URL {url:?}: {bucket:?} is not a bucket name (3 to 63 of a-z, 0-9, \
                 `.` and `-`, starting and ending with a letter or digit)"
            )));
        }
        let prefix = if prefix.is_empty() {
            None
        } else {
            Some(ObjectKey::parse(prefix).map_err(|error: InvalidKey| {
                S3SetupError(format!(
                    "storage URL {url:?}: key prefix {prefix:?}: {error}"
                ))
            })?)
        };
        Ok(S3Config {
            bucket: bucket.to_owned(),
            prefix,
            endpoint: None,
            region: None,
            force_path_style: false,
            credentials: None,
            playback: Playback::Proxy,
        })
    }
}

/// S3's bucket naming rules (the portable subset every compatible server accepts).
fn valid_bucket_name(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// Objects in one bucket of an S3-compatible server.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: Client,
    bucket: String,
    prefix: Option<ObjectKey>,
    /// Where requests go, for messages: the endpoint URL or "AWS S3 (REGION)".
    endpoint: String,
    playback: Playback,
}

impl S3Store {
    /// A client for the bucket `config` names. Nothing is sent yet: [`S3Store::check`] tells
    /// whether the bucket can be used.
    pub async fn connect(config: S3Config) -> Result<S3Store, S3SetupError> {
        if let Some(endpoint) = &config.endpoint {
            url::Url::parse(endpoint).map_err(|error| {
                S3SetupError(format!("S3 endpoint {endpoint:?} is not a URL: {error}"))
            })?;
        }
        // ring rather than the SDK's default aws-lc: the workspace already builds ring for its
        // other TLS clients.
        let http_client = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http_client)
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(MAX_ATTEMPTS)
                    .with_initial_backoff(INITIAL_BACKOFF)
                    .with_max_backoff(MAX_BACKOFF),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .read_timeout(READ_TIMEOUT)
                    .build(),
            );
        if let Some(region) = &config.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(endpoint) = &config.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        if let Some(credentials) = &config.credentials {
            loader = loader.credentials_provider(Credentials::new(
                &credentials.access_key_id,
                &credentials.secret_access_key,
                None,
                None,
                "sluice-configuration",
            ));
        }
        let shared = loader.load().await;
        let endpoint = match shared.endpoint_url() {
            Some(url) => url.to_owned(),
            None => format!(
                "AWS S3 ({})",
                shared.region().map_or(FALLBACK_REGION, |r| r.as_ref())
            ),
        };
        let region = shared
            .region()
            .cloned()
            .unwrap_or_else(|| Region::from_static(FALLBACK_REGION));
        let s3_config = aws_sdk_s3::config::Builder::from(&shared)
            .region(region)
            .force_path_style(config.force_path_style)
            // Checksums only where S3 requires them: many S3-compatible servers do not accept
            // the trailing checksums of streamed uploads that the SDK otherwise adds.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .build();
        Ok(S3Store {
            client: Client::from_conf(s3_config),
            bucket: config.bucket,
            prefix: config.prefix,
            endpoint,
            playback: config.playback,
        })
    }

    /// The startup health check: the bucket exists and these credentials may use it.
    pub async fn check(&self) -> Result<(), S3SetupError> {
        let result = self.client.head_bucket().bucket(&self.bucket).send().await;
        let Err(error) = result else {
            return Ok(());
        };
        let (bucket, endpoint) = (&self.bucket, &self.endpoint);
        let message = match &error {
            SdkError::ServiceError(service) => match service.raw().status().as_u16() {
                404 => format!("bucket {bucket:?} does not exist at {endpoint}"),
                301 | 400 => format!(
                    "bucket {bucket:?} at {endpoint} refused the request (wrong region or \
                     addressing style?): {}",
                    DisplayErrorContext(&error)
                ),
                401 | 403 => format!(
                    "access to bucket {bucket:?} at {endpoint} was denied: check the access \
                     key id and secret access key"
                ),
                status => format!(
                    "bucket {bucket:?} at {endpoint} answered HTTP {status}: {}",
                    DisplayErrorContext(&error)
                ),
            },
            SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => format!(
                "cannot reach the object store at {endpoint} (bucket {bucket:?}): {}",
                DisplayErrorContext(&error)
            ),
            _ => format!(
                "cannot send requests to bucket {bucket:?} at {endpoint} (no credentials?): {}",
                DisplayErrorContext(&error)
            ),
        };
        Err(S3SetupError(message))
    }

    /// The bucket's name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The name of `key` in the bucket: the key under the store's prefix.
    pub fn object_name(&self, key: &ObjectKey) -> String {
        match &self.prefix {
            Some(prefix) => format!("{prefix}/{key}"),
            None => key.to_string(),
        }
    }

    /// The presigned GET URL of `key`, valid for `expires_in`.
    async fn presigned_get(
        &self,
        key: &ObjectKey,
        expires_in: Duration,
    ) -> Result<String, StoreError> {
        let presigning = aws_sdk_s3::presigning::PresigningConfig::expires_in(expires_in)
            .map_err(|error| backend_error(key, &error))?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.object_name(key))
            .presigned(presigning)
            .await
            .map_err(|error| backend_error(key, &DisplayErrorContext(&error)))?;
        Ok(request.uri().to_owned())
    }

    /// The object's ETag, which tells a multipart object by its `-PARTS` suffix.
    #[cfg(test)]
    pub(crate) async fn e_tag(&self, key: &ObjectKey) -> String {
        let head = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(self.object_name(key))
            .send()
            .await
            .unwrap();
        head.e_tag().unwrap_or_default().to_owned()
    }

    /// Size of the object, [`StoreError::NotFound`] when there is none.
    async fn size_of(&self, key: &ObjectKey) -> Result<u64, StoreError> {
        let head = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(self.object_name(key))
            .send()
            .await
            .map_err(|error| sdk_error(key, error))?;
        Ok(head.content_length().unwrap_or(0).max(0) as u64)
    }

    /// Uploads an object of `size` bytes in parts; `send_part(upload_id, part_number, range)`
    /// sends one part and returns its ETag. The upload is aborted when any step fails.
    async fn multipart<F, Fut>(
        &self,
        key: &ObjectKey,
        size: u64,
        part_size: u64,
        send_part: F,
    ) -> Result<(), StoreError>
    where
        F: Fn(String, i32, std::ops::Range<u64>) -> Fut,
        Fut: std::future::Future<Output = Result<String, StoreError>>,
    {
        let name = self.object_name(key);
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(&name)
            .send()
            .await
            .map_err(|error| sdk_error(key, error))?;
        let upload_id = created
            .upload_id()
            .ok_or_else(|| backend_error(key, &"the server gave no multipart upload id"))?
            .to_owned();
        let uploaded = async {
            let mut parts = Vec::new();
            for (index, start) in (0..size).step_by(part_size as usize).enumerate() {
                let number = index as i32 + 1;
                let end = (start + part_size).min(size);
                let e_tag = send_part(upload_id.clone(), number, start..end).await?;
                parts.push(
                    CompletedPart::builder()
                        .part_number(number)
                        .e_tag(e_tag)
                        .build(),
                );
            }
            self.client
                .complete_multipart_upload()
                .bucket(&self.bucket)
                .key(&name)
                .upload_id(&upload_id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                )
                .send()
                .await
                .map_err(|error| sdk_error(key, error))?;
            Ok(())
        }
        .await;
        if uploaded.is_err() {
            if let Err(error) = self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(&name)
                .upload_id(&upload_id)
                .send()
                .await
            {
                tracing::warn!(key = %key, upload_id = %upload_id, error = %DisplayErrorContext(&error),
                    "Cannot abort a failed multipart upload; the bucket's lifecycle rules must \
                     remove its parts.");
            }
        }
        uploaded
    }

    /// Uploads the file at `path` (`size` bytes) in parts streamed from the file.
    async fn put_file_in_parts(
        &self,
        key: &ObjectKey,
        path: &Path,
        size: u64,
    ) -> Result<(), StoreError> {
        let part_size = MULTIPART_PART_SIZE.max(size.div_ceil(MAX_PARTS));
        let name = self.object_name(key);
        self.multipart(key, size, part_size, |upload_id, number, range| {
            let name = name.clone();
            async move {
                let body = ByteStream::read_from()
                    .path(path)
                    .offset(range.start)
                    .length(Length::Exact(range.end - range.start))
                    .build()
                    .await
                    .map_err(|error| backend_error(key, &error))?;
                let part = self
                    .client
                    .upload_part()
                    .bucket(&self.bucket)
                    .key(name)
                    .upload_id(upload_id)
                    .part_number(number)
                    .content_length((range.end - range.start) as i64)
                    .body(body)
                    .send()
                    .await
                    .map_err(|error| sdk_error(key, error))?;
                part.e_tag()
                    .map(str::to_owned)
                    .ok_or_else(|| backend_error(key, &"the server gave no ETag for a part"))
            }
        })
        .await
    }

    /// Copies an object above [`MAX_SINGLE_COPY`] bytes in parts, inside the store.
    async fn copy_in_parts(
        &self,
        from: &ObjectKey,
        to: &ObjectKey,
        size: u64,
    ) -> Result<(), StoreError> {
        let source = self.copy_source(from);
        let name = self.object_name(to);
        self.multipart(to, size, COPY_PART_SIZE, |upload_id, number, range| {
            let (source, name) = (source.clone(), name.clone());
            async move {
                let part = self
                    .client
                    .upload_part_copy()
                    .bucket(&self.bucket)
                    .key(name)
                    .upload_id(upload_id)
                    .part_number(number)
                    .copy_source(source)
                    .copy_source_range(format!("bytes={}-{}", range.start, range.end - 1))
                    .send()
                    .await
                    .map_err(|error| sdk_error(from, error))?;
                part.copy_part_result()
                    .and_then(|result| result.e_tag())
                    .map(str::to_owned)
                    .ok_or_else(|| backend_error(to, &"the server gave no ETag for a part"))
            }
        })
        .await
    }

    /// The `x-amz-copy-source` naming `key`. Object keys hold only `[A-Za-z0-9._-/]`, none of
    /// which needs percent-encoding.
    fn copy_source(&self, key: &ObjectKey) -> String {
        format!("{}/{}", self.bucket, self.object_name(key))
    }

    /// Deletes `names` in one request, failing when the server reports any of them not
    /// deleted.
    async fn delete_batch(&self, prefix: &ObjectKey, names: Vec<String>) -> Result<(), StoreError> {
        let objects = names
            .into_iter()
            .map(|name| ObjectIdentifier::builder().key(name).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| backend_error(prefix, &error))?;
        let delete = Delete::builder()
            .set_objects(Some(objects))
            .quiet(true)
            .build()
            .map_err(|error| backend_error(prefix, &error))?;
        let deleted = self
            .client
            .delete_objects()
            .bucket(&self.bucket)
            .delete(delete)
            .send()
            .await
            .map_err(|error| sdk_error(prefix, error))?;
        match deleted.errors().first() {
            None => Ok(()),
            Some(failed) => Err(backend_error(
                prefix,
                &format!(
                    "{} objects were not deleted, the first ({}): {}",
                    deleted.errors().len(),
                    failed.key().unwrap_or("?"),
                    failed
                        .message()
                        .or(failed.code())
                        .unwrap_or("no reason given")
                ),
            )),
        }
    }
}

/// An error of the backend about `key` that is not "no such object".
fn backend_error(key: &ObjectKey, message: &dyn fmt::Display) -> StoreError {
    StoreError::Backend {
        key: key.clone(),
        message: message.to_string(),
    }
}

/// Maps an SDK error about `key`: "no such key" (or any 404 but a missing bucket's) becomes
/// [`StoreError::NotFound`], anything else a backend error with the whole cause chain.
fn sdk_error<E>(key: &ObjectKey, error: SdkError<E>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let SdkError::ServiceError(service) = &error else {
        return backend_error(key, &DisplayErrorContext(&error));
    };
    let code = service.err().code();
    let status = service.raw().status().as_u16();
    let not_found = matches!(code, Some("NoSuchKey" | "NotFound")) || status == 404;
    if not_found && code != Some("NoSuchBucket") {
        return StoreError::NotFound { key: key.clone() };
    }
    backend_error(
        key,
        &format!(
            "{} (HTTP {status}){}",
            code.unwrap_or("error"),
            service
                .err()
                .message()
                .map(|message| format!(": {message}"))
                .unwrap_or_default()
        ),
    )
}

#[async_trait]
impl ObjectStore for S3Store {
    async fn put(&self, key: &ObjectKey, body: Bytes) -> Result<(), StoreError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(self.object_name(key))
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|error| sdk_error(key, error))?;
        Ok(())
    }

    async fn put_file(&self, key: &ObjectKey, path: &Path) -> Result<(), StoreError> {
        let size = tokio::fs::metadata(path)
            .await
            .map_err(|source| StoreError::Io {
                key: key.clone(),
                source,
            })?
            .len();
        if size > MULTIPART_THRESHOLD {
            return self.put_file_in_parts(key, path, size).await;
        }
        let body = ByteStream::from_path(path)
            .await
            .map_err(|error| backend_error(key, &error))?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(self.object_name(key))
            .content_length(size as i64)
            .body(body)
            .send()
            .await
            .map_err(|error| sdk_error(key, error))?;
        Ok(())
    }

    async fn get_to_file(&self, key: &ObjectKey, path: &Path) -> Result<u64, StoreError> {
        let object = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.object_name(key))
            .send()
            .await
            .map_err(|error| sdk_error(key, error))?;
        let io_error = |source| StoreError::Io {
            key: key.clone(),
            source,
        };
        let mut file = tokio::fs::File::create(path).await.map_err(io_error)?;
        let mut body = object.body;
        let mut written = 0u64;
        while let Some(chunk) = body
            .try_next()
            .await
            .map_err(|error| backend_error(key, &DisplayErrorContext(&error)))?
        {
            file.write_all(&chunk).await.map_err(io_error)?;
            written += chunk.len() as u64;
        }
        file.flush().await.map_err(io_error)?;
        Ok(written)
    }

    async fn get(&self, key: &ObjectKey) -> Result<Bytes, StoreError> {
        let object = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.object_name(key))
            .send()
            .await
            .map_err(|error| sdk_error(key, error))?;
        let body = object
            .body
            .collect()
            .await
            .map_err(|error| backend_error(key, &DisplayErrorContext(&error)))?;
        Ok(body.into_bytes())
    }

    async fn copy(&self, from: &ObjectKey, to: &ObjectKey) -> Result<(), StoreError> {
        let size = self.size_of(from).await?;
        if size > MAX_SINGLE_COPY {
            return self.copy_in_parts(from, to, size).await;
        }
        self.client
            .copy_object()
            .bucket(&self.bucket)
            .key(self.object_name(to))
            .copy_source(self.copy_source(from))
            .send()
            .await
            .map_err(|error| sdk_error(from, error))?;
        Ok(())
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), StoreError> {
        match self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.object_name(key))
            .send()
            .await
            .map_err(|error| sdk_error(key, error))
        {
            Ok(_) | Err(StoreError::NotFound { .. }) => Ok(()),
            Err(error) => Err(error),
        }
    }

    fn public_url(&self, key: &ObjectKey) -> Option<String> {
        match &self.playback {
            Playback::Public { base_url } => Some(format!(
                "{}/{}",
                base_url.trim_end_matches('/'),
                self.object_name(key)
            )),
            _ => None,
        }
    }

    async fn redirect_url(&self, key: &ObjectKey) -> Result<Option<String>, StoreError> {
        match self.playback {
            Playback::Redirect { expires_in } => {
                self.presigned_get(key, expires_in).await.map(Some)
            }
            _ => Ok(None),
        }
    }

    async fn delete_prefix(&self, prefix: &ObjectKey) -> Result<(), StoreError> {
        let listed_prefix = format!("{}/", self.object_name(prefix));
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&listed_prefix)
            .into_paginator()
            .send();
        let mut batch = Vec::with_capacity(DELETE_BATCH);
        while let Some(page) = pages.next().await {
            let page = page.map_err(|error| sdk_error(prefix, error))?;
            for object in page.contents() {
                if let Some(name) = object.key() {
                    batch.push(name.to_owned());
                }
                if batch.len() == DELETE_BATCH {
                    self.delete_batch(prefix, std::mem::take(&mut batch))
                        .await?;
                }
            }
        }
        if !batch.is_empty() {
            self.delete_batch(prefix, batch).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_urls_name_a_bucket_and_an_optional_prefix() {
        let config = S3Config::from_url("s3://media/sluice/prod/").unwrap();
        assert_eq!(config.bucket, "media");
        assert_eq!(config.prefix.unwrap().as_str(), "sluice/prod");
        let config = S3Config::from_url("s3://media-1.example").unwrap();
        assert_eq!(config.bucket, "media-1.example");
        assert_eq!(config.prefix, None);
        assert_eq!(S3Config::from_url("s3://media/").unwrap().prefix, None);
        for bad in [
            "media/x",
            "https://media/x",
            "s3://",
            "s3://Media",
            "s3://ab",
            "s3://-media",
            "s3://media/../x",
            "s3://media/a//b",
            "s3://media/a b",
        ] {
            assert!(S3Config::from_url(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn credentials_never_print_the_secret() {
        let credentials = S3Credentials {
            access_key_id: "AKIA1".into(),
            secret_access_key: "very-secret".into(),
        };
        let printed = format!("{credentials:?}");
        assert!(printed.contains("AKIA1") && !printed.contains("very-secret"));
    }

    #[tokio::test]
    async fn object_names_sit_under_the_prefix() {
        let mut config = S3Config::from_url("s3://media/tenant-1").unwrap();
        config.endpoint = Some("http://127.0.0.1:9".into());
        let store = S3Store::connect(config).await.unwrap();
        let key = ObjectKey::parse("assets/a1/hls/master.m3u8").unwrap();
        assert_eq!(
            store.object_name(&key),
            "tenant-1/assets/a1/hls/master.m3u8"
        );
        assert_eq!(
            store.copy_source(&key),
            "media/tenant-1/assets/a1/hls/master.m3u8"
        );
    }

    #[tokio::test]
    async fn a_bad_endpoint_is_refused_before_any_request() {
        let mut config = S3Config::from_url("s3://media").unwrap();
        config.endpoint = Some("not a url".into());
        let error = S3Store::connect(config).await.unwrap_err().to_string();
        assert!(error.contains("not a URL"), "{error}");
    }
}
