use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::error::{DisplayErrorContext, SdkError};
use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart, CreateBucketConfiguration};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::BlobStore;
use crate::config::BlobSettings;
use crate::domain::ContentHash;

/// Files larger than this go up in parts, so a failure costs one part, not the whole file.
pub const MULTIPART_THRESHOLD: u64 = 16 * 1024 * 1024;
/// S3 allows at most this many parts in one upload.
const MAX_PARTS: u64 = 10_000;
const MIN_PART_SIZE: u64 = 8 * 1024 * 1024;

/// Originals in an S3-compatible bucket under `originals/<sha256>.pdf`.
pub struct S3BlobStore {
    client: Client,
    bucket: String,
}

/// An SDK error with its whole cause chain: the SDK's own `Display` says only "service error".
fn s3_error<E, R>(err: SdkError<E, R>) -> anyhow::Error
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    anyhow::anyhow!("{}", DisplayErrorContext(&err))
}

fn key_of(hash: &ContentHash) -> String {
    format!("originals/{hash}.pdf")
}

/// Files made from an original (page images), beside it.
fn derived_prefix(hash: &ContentHash) -> String {
    format!("derived/{hash}/")
}

/// Part size for a file of `size` bytes: 8 MiB, or larger when the file would need more parts than S3 allows.
fn part_size_for(size: u64) -> u64 {
    MIN_PART_SIZE.max(size.div_ceil(MAX_PARTS))
}

impl S3BlobStore {
    /// Connects to the configured server and creates the bucket when it is missing.
    pub async fn open(settings: &BlobSettings) -> anyhow::Result<Self> {
        let scheme = if settings.s3_secure { "https" } else { "http" };
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(format!(
                "{scheme}://{}",
                settings.s3_endpoint.as_deref().unwrap_or_default()
            ))
            // MinIO and most self-hosted servers do not resolve bucket subdomains.
            .force_path_style(true)
            .region(Region::new(settings.s3_region.clone()))
            .credentials_provider(Credentials::new(
                settings.s3_access_key.clone(),
                settings
                    .s3_secret_key
                    .as_ref()
                    .map_or_else(String::new, |key| key.expose_secret().to_owned()),
                None,
                None,
                "hbi-config",
            ))
            // An unreachable server must fail a readiness check quickly, not hang it.
            .timeout_config(TimeoutConfig::builder().connect_timeout(Duration::from_secs(5)).build())
            .build();
        let store = Self {
            client: Client::from_conf(config),
            bucket: settings.s3_bucket.clone(),
        };
        store.ensure_bucket(&settings.s3_region).await?;
        Ok(store)
    }

    async fn ensure_bucket(&self, region: &str) -> anyhow::Result<()> {
        match self.client.head_bucket().bucket(&self.bucket).send().await {
            Ok(_) => return Ok(()),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_not_found()) => {}
            Err(err) => return Err(s3_error(err)).with_context(|| format!("checking S3 bucket {}", self.bucket)),
        }
        let mut request = self.client.create_bucket().bucket(&self.bucket);
        // us-east-1 is the one region S3 refuses as an explicit location constraint.
        if !region.is_empty() && region != "us-east-1" {
            request = request.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(region.into())
                    .build(),
            );
        }
        match request.send().await {
            Ok(_) => Ok(()),
            // Another replica created it in the meantime.
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_bucket_already_owned_by_you()) =>
            {
                Ok(())
            }
            Err(err) => Err(s3_error(err)).with_context(|| format!("creating S3 bucket {}", self.bucket)),
        }
    }

    async fn put_multipart(&self, key: &str, source: &Path, size: u64) -> anyhow::Result<()> {
        let upload = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/pdf")
            // Named here so that every part carries a CRC32 the server can check on completion.
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .send()
            .await
            .map_err(s3_error)?;
        let upload_id = upload.upload_id().context("S3 returned no multipart upload id")?;
        match self.upload_parts(key, upload_id, source, size).await {
            Ok(()) => Ok(()),
            Err(err) => {
                // Left alone, the uploaded parts would be stored (and billed) until a lifecycle rule runs.
                if let Err(abort) = self
                    .client
                    .abort_multipart_upload()
                    .bucket(&self.bucket)
                    .key(key)
                    .upload_id(upload_id)
                    .send()
                    .await
                {
                    tracing::warn!(key, error = %DisplayErrorContext(&abort), "could not abort a failed multipart upload");
                }
                Err(err)
            }
        }
    }

    async fn upload_parts(&self, key: &str, upload_id: &str, source: &Path, size: u64) -> anyhow::Result<()> {
        let part_size = part_size_for(size);
        let mut parts = Vec::new();
        let mut offset = 0;
        while offset < size {
            let length = part_size.min(size - offset);
            let part_number = i32::try_from(parts.len() + 1).context("too many parts")?;
            let body = ByteStream::read_from()
                .path(source)
                .offset(offset)
                .length(Length::Exact(length))
                .build()
                .await
                .with_context(|| format!("reading {}", source.display()))?;
            let uploaded = self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(part_number)
                .content_length(i64::try_from(length)?)
                .checksum_algorithm(ChecksumAlgorithm::Crc32)
                .body(body)
                .send()
                .await
                .map_err(s3_error)
                .with_context(|| format!("uploading part {part_number} of {key}"))?;
            parts.push(
                CompletedPart::builder()
                    .part_number(part_number)
                    .set_e_tag(uploaded.e_tag().map(str::to_owned))
                    .set_checksum_crc32(uploaded.checksum_crc32().map(str::to_owned))
                    .build(),
            );
            offset += length;
        }
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
            .await
            .map_err(s3_error)
            .with_context(|| format!("completing the multipart upload of {key}"))?;
        Ok(())
    }

    /// Streams the object into `dest`, checking on the way that the bytes hash to `hash`.
    async fn download(&self, hash: &ContentHash, dest: &Path) -> anyhow::Result<()> {
        let object = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key_of(hash))
            .send()
            .await
        {
            Ok(object) => object,
            Err(err) if err.as_service_error().is_some_and(|e| e.is_no_such_key()) => {
                anyhow::bail!("blob {hash} is missing from the S3 store")
            }
            Err(err) => return Err(s3_error(err)),
        };
        let mut body = object.body;
        let mut file = tokio::fs::File::create(dest)
            .await
            .with_context(|| format!("creating {}", dest.display()))?;
        let mut digest = Sha256::new();
        while let Some(chunk) = body.try_next().await.context("reading the object body")? {
            digest.update(&chunk);
            file.write_all(&chunk).await?;
        }
        file.flush().await?;
        let received = ContentHash::from_digest(&digest.finalize());
        anyhow::ensure!(
            &received == hash,
            "blob {hash} in S3 is corrupt: its content hashes to {received}"
        );
        Ok(())
    }
}

#[async_trait]
impl BlobStore for S3BlobStore {
    fn kind(&self) -> &'static str {
        "s3"
    }

    async fn put_file(&self, hash: &ContentHash, source: &Path) -> anyhow::Result<()> {
        if self.exists(hash).await? {
            return Ok(());
        }
        let key = key_of(hash);
        let size = tokio::fs::metadata(source)
            .await
            .with_context(|| format!("reading {}", source.display()))?
            .len();
        if size > MULTIPART_THRESHOLD {
            return self
                .put_multipart(&key, source, size)
                .await
                .with_context(|| format!("uploading {} to S3", source.display()));
        }
        let body = ByteStream::from_path(source)
            .await
            .with_context(|| format!("reading {}", source.display()))?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .content_type("application/pdf")
            .body(body)
            .send()
            .await
            .map_err(s3_error)
            .with_context(|| format!("uploading {} to S3", source.display()))?;
        Ok(())
    }

    async fn exists(&self, hash: &ContentHash) -> anyhow::Result<bool> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key_of(hash))
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_not_found()) => Ok(false),
            Err(err) => Err(s3_error(err)),
        }
    }

    async fn fetch_to_file(&self, hash: &ContentHash, dest: &Path) -> anyhow::Result<()> {
        let result = self.download(hash, dest).await;
        if result.is_err() {
            // Never leave a truncated or corrupt copy where the caller expects the original.
            tokio::fs::remove_file(dest).await.ok();
        }
        result
    }

    async fn delete(&self, hash: &ContentHash) -> anyhow::Result<()> {
        let mut derived = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(derived_prefix(hash))
            .into_paginator()
            .send();
        while let Some(page) = derived.next().await {
            for object in page.map_err(s3_error)?.contents() {
                if let Some(key) = object.key() {
                    self.client
                        .delete_object()
                        .bucket(&self.bucket)
                        .key(key)
                        .send()
                        .await
                        .map_err(s3_error)?;
                }
            }
        }
        // DeleteObject succeeds for a missing key too.
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key_of(hash))
            .send()
            .await
            .map_err(s3_error)?;
        Ok(())
    }

    async fn get_derived(&self, hash: &ContentHash, name: &str) -> anyhow::Result<Option<Vec<u8>>> {
        anyhow::ensure!(super::is_derived_name(name), "not a derived file's name: {name:?}");
        let key = format!("{}{name}", derived_prefix(hash));
        match self.client.get_object().bucket(&self.bucket).key(&key).send().await {
            Ok(object) => {
                let bytes = object.body.collect().await.context("reading a derived file from S3")?;
                Ok(Some(bytes.into_bytes().to_vec()))
            }
            Err(err) if err.as_service_error().is_some_and(|e| e.is_no_such_key()) => Ok(None),
            Err(err) => Err(s3_error(err)),
        }
    }

    async fn put_derived(&self, hash: &ContentHash, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
        anyhow::ensure!(super::is_derived_name(name), "not a derived file's name: {name:?}");
        let content_type = if name.ends_with(".png") {
            "image/png"
        } else {
            "application/octet-stream"
        };
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(format!("{}{name}", derived_prefix(hash)))
            .content_type(content_type)
            .body(ByteStream::from(bytes.to_vec()))
            .send()
            .await
            .map_err(s3_error)?;
        Ok(())
    }

    async fn check(&self) -> anyhow::Result<()> {
        self.client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(s3_error)
            .with_context(|| format!("S3 bucket {} is not reachable", self.bucket))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_stay_within_the_s3_part_limit() {
        assert_eq!(part_size_for(17 * 1024 * 1024), MIN_PART_SIZE);
        let huge: u64 = 200 * 1024 * 1024 * 1024;
        assert!(huge.div_ceil(part_size_for(huge)) <= MAX_PARTS);
    }
}
