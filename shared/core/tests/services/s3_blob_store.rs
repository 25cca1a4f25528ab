//! The S3 blob store against a real S3 server (s3s-fs, which checks request signatures).

use crate::services;

use std::path::Path;

use hbi_shared::blobs::{BlobStore, S3BlobStore};
use hbi_shared::config::{BlobSettings, ExposeSecret};
use hbi_shared::domain::ContentHash;
use services::Service;

const ACCESS_KEY: &str = "hbi-test-access";
const SECRET_KEY: &str = "hbi-test-secret-key";

fn settings(service: &Service, bucket: &str, secret: &str) -> BlobSettings {
    BlobSettings {
        s3_endpoint: Some(service.url.trim_start_matches("http://").to_owned()),
        s3_access_key: ACCESS_KEY.to_owned(),
        s3_secret_key: Some(secret.into()),
        s3_secure: false,
        s3_bucket: bucket.to_owned(),
        s3_region: "us-east-1".to_owned(),
    }
}

/// A bucket name nobody has created yet, so opening the store must create it.
fn fresh_bucket() -> String {
    format!("hbi-test-{}", uuid::Uuid::new_v4().simple())
}

/// Bytes that differ from position to position, so a misplaced part would show.
fn patterned(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[i % 4] ^ seed)
        .collect()
}

async fn write(path: &Path, bytes: &[u8]) -> ContentHash {
    tokio::fs::write(path, bytes).await.expect("write source file");
    ContentHash::of(bytes)
}

#[tokio::test]
async fn put_exists_fetch_delete_round_trip() -> anyhow::Result<()> {
    let service = Service::start("s3");
    let bucket = fresh_bucket();
    assert!(!service.state_dir().join("data").join(&bucket).exists());
    let store = S3BlobStore::open(&settings(&service, &bucket, SECRET_KEY)).await?;
    // s3s-fs keeps a bucket as a directory of its data dir.
    assert!(
        service.state_dir().join("data").join(&bucket).is_dir(),
        "open creates the bucket"
    );
    assert_eq!(store.kind(), "s3");
    store.check().await?;

    let dir = tempfile::tempdir()?;
    let original = patterned(300_000, 7);
    let hash = write(&dir.path().join("in.pdf"), &original).await;
    assert!(!store.exists(&hash).await?);
    store.put_file(&hash, &dir.path().join("in.pdf")).await?;
    assert!(store.exists(&hash).await?);
    assert!(
        service
            .state_dir()
            .join(format!("data/{bucket}/originals/{hash}.pdf"))
            .is_file(),
        "the key is originals/<sha256>.pdf"
    );

    let out = dir.path().join("out.pdf");
    store.fetch_to_file(&hash, &out).await?;
    assert!(
        tokio::fs::read(&out).await? == original,
        "fetched bytes equal the original"
    );

    store.delete(&hash).await?;
    assert!(!store.exists(&hash).await?);
    store.delete(&hash).await?; // deleting a missing blob is fine
    let missing = store
        .fetch_to_file(&hash, &dir.path().join("missing.pdf"))
        .await
        .expect_err("fetching a deleted blob fails");
    assert!(format!("{missing:#}").contains("missing"), "{missing:#}");
    assert!(
        !dir.path().join("missing.pdf").exists(),
        "no partial file is left behind"
    );

    // Opening again finds the bucket and keeps it.
    S3BlobStore::open(&settings(&service, &bucket, SECRET_KEY)).await?;
    Ok(())
}

#[tokio::test]
async fn put_of_stored_content_is_skipped() -> anyhow::Result<()> {
    let service = Service::start("s3");
    let store = S3BlobStore::open(&settings(&service, &fresh_bucket(), SECRET_KEY)).await?;
    let dir = tempfile::tempdir()?;
    let original = patterned(10_000, 1);
    let hash = write(&dir.path().join("a.pdf"), &original).await;
    store.put_file(&hash, &dir.path().join("a.pdf")).await?;
    // Same key, other bytes: had the second put uploaded, the stored bytes would change.
    tokio::fs::write(dir.path().join("b.pdf"), patterned(10_000, 2)).await?;
    store.put_file(&hash, &dir.path().join("b.pdf")).await?;
    let out = dir.path().join("out.pdf");
    store.fetch_to_file(&hash, &out).await?;
    assert!(tokio::fs::read(&out).await? == original, "the first upload is kept");
    Ok(())
}

#[tokio::test]
async fn a_large_file_goes_up_in_parts_and_round_trips() -> anyhow::Result<()> {
    let service = Service::start("s3");
    let bucket = fresh_bucket();
    let store_settings = settings(&service, &bucket, SECRET_KEY);
    let store = S3BlobStore::open(&store_settings).await?;
    let dir = tempfile::tempdir()?;
    // 8 MiB + 8 MiB + a short last part.
    let original = patterned(20 * 1024 * 1024 + 12_345, 3);
    let hash = write(&dir.path().join("big.pdf"), &original).await;
    store.put_file(&hash, &dir.path().join("big.pdf")).await?;

    // A multipart object's ETag is `<md5 of part md5s>-<number of parts>`.
    let client = raw_client(&store_settings);
    let head = client
        .head_object()
        .bucket(&bucket)
        .key(format!("originals/{hash}.pdf"))
        .send()
        .await
        .map_err(|err| anyhow::anyhow!("{}", aws_sdk_s3::error::DisplayErrorContext(&err)))?;
    let etag = head.e_tag().unwrap_or_default().trim_matches('"').to_owned();
    assert!(etag.ends_with("-3"), "uploaded in 3 parts, ETag {etag}");
    assert_eq!(head.content_length(), Some(original.len() as i64));

    let out = dir.path().join("out.pdf");
    store.fetch_to_file(&hash, &out).await?;
    assert!(
        tokio::fs::read(&out).await? == original,
        "fetched bytes equal the original"
    );

    // No part is left behind (s3s-fs keeps parts as `.upload_id-*` files until completion).
    let leftovers: Vec<_> = std::fs::read_dir(service.state_dir().join("data"))?
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().starts_with(".upload_id-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    Ok(())
}

#[tokio::test]
async fn a_wrong_secret_is_refused() {
    let service = Service::start("s3");
    let error = match S3BlobStore::open(&settings(&service, "hbi", "not-the-secret")).await {
        Ok(_) => panic!("a wrong secret must not open the store"),
        Err(error) => format!("{error:#}"),
    };
    assert!(
        error.contains("SignatureDoesNotMatch") || error.contains("403") || error.contains("AccessDenied"),
        "{error}"
    );
}

#[tokio::test]
async fn check_follows_the_server() -> anyhow::Result<()> {
    let service = Service::start("s3");
    let store = S3BlobStore::open(&settings(&service, &fresh_bucket(), SECRET_KEY)).await?;
    store.check().await?;
    service.stop();
    let started = std::time::Instant::now();
    assert!(store.check().await.is_err(), "check fails while the server is down");
    assert!(
        started.elapsed().as_secs() < 30,
        "and fails quickly: {:?}",
        started.elapsed()
    );
    service.restart();
    store.check().await?;
    Ok(())
}

fn raw_client(settings: &BlobSettings) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .endpoint_url(format!(
            "http://{}",
            settings.s3_endpoint.as_deref().unwrap_or_default()
        ))
        .force_path_style(true)
        .region(aws_sdk_s3::config::Region::new(settings.s3_region.clone()))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            &settings.s3_access_key,
            settings.s3_secret_key.as_ref().map_or("", |key| key.expose_secret()),
            None,
            None,
            "test",
        ))
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

#[tokio::test]
async fn backends_use_s3_when_an_endpoint_is_configured() -> anyhow::Result<()> {
    let service = Service::start("s3");
    let data_dir = tempfile::tempdir()?;
    let overrides = hbi_shared::config::Overrides {
        data_dir: Some(data_dir.path().to_path_buf()),
        ..Default::default()
    };
    let mut settings = hbi_shared::Settings::load(Some(Path::new("/nonexistent")), &overrides)?;
    settings.database.url = None;
    settings.blobs = self::settings(&service, &fresh_bucket(), SECRET_KEY);
    let backends = hbi_shared::Backends::open(&settings, true).await?;
    assert_eq!(backends.blobs.kind(), "s3");
    let blob_check = backends
        .check_all()
        .await
        .into_iter()
        .find(|check| check.name == "blob_store");
    assert!(blob_check.is_some_and(|check| check.kind == "s3" && check.error.is_none()));
    assert!(
        !data_dir.path().join("blobs").exists(),
        "no local blob directory in the S3 shape"
    );
    Ok(())
}
