//! Object stores from a location and options: the one place S3 options are
//! read, for the lake root and for files sources alike.

use std::collections::BTreeMap;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use url::Url;

/// The S3 option keys users write, as `CREATE SOURCE` and lake options
/// accept them.
pub const S3_OPTIONS: [&str; 6] = [
    "endpoint",
    "region",
    "access_key_id",
    "secret_access_key",
    "session_token",
    "allow_http",
];

/// A location as a URL: `s3://…` and `file://…` as written, a plain path
/// made absolute (it must exist).
pub fn location_url(location: &str) -> Result<Url, String> {
    match Url::parse(location) {
        Ok(url) if url.scheme().len() > 1 => Ok(url),
        // A plain path (or a Windows drive letter parsed as a scheme).
        _ => {
            let abs = std::fs::canonicalize(location)
                .map_err(|e| format!("location {location} cannot be read: {e}"))?;
            if abs.is_dir() {
                Url::from_directory_path(&abs)
            } else {
                Url::from_file_path(&abs)
            }
            .map_err(|()| format!("not a usable path: {location}"))
        }
    }
}

/// The store serving `url` (`file://` or `s3://`), configured from
/// `options` (S3 also reads the usual `AWS_*` environment variables).
pub fn store_for(
    url: &Url,
    options: &BTreeMap<String, String>,
) -> Result<Arc<dyn ObjectStore>, String> {
    match url.scheme() {
        "file" => Ok(Arc::new(LocalFileSystem::new())),
        "s3" | "s3a" => s3_store(url, options.iter()),
        other => Err(format!(
            "unsupported location scheme '{other}': use a local path, file:// or s3://"
        )),
    }
}

/// An S3 (or S3-compatible) store for the bucket of `url`.
pub fn s3_store<'a>(
    url: &Url,
    options: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> Result<Arc<dyn ObjectStore>, String> {
    let mut builder = AmazonS3Builder::from_env().with_url(url.as_str());
    for (k, v) in options {
        if let Some(key) = s3_key(k)? {
            builder = builder.with_config(key, v);
        }
    }
    Ok(Arc::new(builder.build().map_err(|e| e.to_string())?))
}

/// Accepts both object_store's names (`aws_endpoint`) and the short ones
/// users type in OPTIONS and config files (`endpoint`). `None` for keys
/// that are not S3 options at all (a files source's `format`, …).
pub fn s3_key(key: &str) -> Result<Option<AmazonS3ConfigKey>, String> {
    let k = key.to_ascii_lowercase();
    let k = match k.as_str() {
        "location" | "format" | "header" | "delimiter" | "on_error" => return Ok(None),
        "endpoint" | "endpoint_url" => "aws_endpoint",
        "region" => "aws_region",
        "access_key_id" | "key" => "aws_access_key_id",
        "secret_access_key" | "secret" => "aws_secret_access_key",
        "session_token" | "token" => "aws_session_token",
        "allow_http" => "aws_allow_http",
        other => other,
    };
    k.parse().map(Some).map_err(|_| {
        format!(
            "unknown S3 option '{key}' (expected {}, …)",
            S3_OPTIONS.join(", ")
        )
    })
}
