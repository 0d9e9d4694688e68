//! What every connector shares: the [`Connector`] trait, its options and
//! errors, and the handling of secrets in definitions and messages.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::CatalogProvider;
use datafusion::execution::SessionState;
use object_store::ObjectStore;
use url::Url;

/// Errors of connectors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No connector of this type is registered.
    #[error("unknown source type '{0}' (known: {1})")]
    UnknownType(String, String),
    /// The source's options are wrong.
    #[error("invalid options for source {source_name}: {message}")]
    Options {
        /// The source being created.
        source_name: String,
        /// What is wrong.
        message: String,
    },
    /// The source could not be reached or read.
    #[error("source {source_name}: {message}")]
    Source {
        /// The source.
        source_name: String,
        /// What failed.
        message: String,
    },
}

/// Result with connector errors.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One option a connector accepts.
#[derive(Debug, Clone, Copy)]
pub struct OptionSpec {
    /// The key, lower case.
    pub key: &'static str,
    /// The definition is invalid without it.
    pub required: bool,
    /// Never shown back: listings print `***`.
    pub secret: bool,
    /// A URL whose password part is secret.
    pub url: bool,
}

impl OptionSpec {
    pub(crate) const fn plain(key: &'static str) -> Self {
        Self {
            key,
            required: false,
            secret: false,
            url: false,
        }
    }
    pub(crate) const fn required(key: &'static str) -> Self {
        Self {
            key,
            required: true,
            secret: false,
            url: false,
        }
    }
    pub(crate) const fn secret(key: &'static str) -> Self {
        Self {
            key,
            required: false,
            secret: true,
            url: false,
        }
    }
    pub(crate) const fn url(key: &'static str) -> Self {
        Self {
            key,
            required: true,
            secret: false,
            url: true,
        }
    }
}

/// An opened source: its catalog, and the object stores its tables read
/// through (each session that queries the source registers them).
#[derive(Clone)]
pub struct OpenedSource {
    /// The source as a catalog.
    pub catalog: Arc<dyn CatalogProvider>,
    /// Object stores by the URL (`s3://bucket`) their tables use.
    pub stores: Vec<(Url, Arc<dyn ObjectStore>)>,
}

impl fmt::Debug for OpenedSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenedSource")
            .field("schemas", &self.catalog.schema_names())
            .field(
                "stores",
                &self
                    .stores
                    .iter()
                    .map(|(u, _)| u.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// A kind of source: turns a definition's options into a catalog.
#[async_trait]
pub trait Connector: fmt::Debug + Send + Sync {
    /// The `TYPE` name in `CREATE SOURCE` (`postgres`, `files`, …).
    fn type_name(&self) -> &'static str;
    /// Every option key the connector accepts.
    fn options(&self) -> &'static [OptionSpec];
    /// Opens the source `name` as a catalog. `state` is the session opening
    /// it (file connectors infer schemas through it). Errors never contain
    /// a secret.
    async fn open(
        &self,
        name: &str,
        options: &BTreeMap<String, String>,
        state: &SessionState,
    ) -> Result<OpenedSource>;
}

pub(crate) fn secrets_of(specs: &[OptionSpec], options: &BTreeMap<String, String>) -> Vec<String> {
    let mut out = Vec::new();
    for (k, v) in options {
        match specs.iter().find(|s| s.key == k) {
            Some(s) if s.url => {
                if let Some(p) = Url::parse(v)
                    .ok()
                    .and_then(|u| u.password().map(str::to_string))
                {
                    out.push(decode(&p));
                    out.push(p);
                }
            }
            Some(s) if !s.secret => {}
            _ => out.push(v.clone()),
        }
    }
    out.retain(|s| !s.is_empty());
    out
}

/// A URL with its password replaced by `***`; an unparsable URL entirely
/// hidden (it may hold a password in a form the parser missed).
pub fn redact_url(value: &str) -> String {
    match Url::parse(value) {
        Ok(mut url) => {
            if url.password().is_some() {
                let _ = url.set_password(Some("***"));
            }
            url.to_string()
        }
        Err(_) => "***".to_string(),
    }
}

/// `message` with every secret replaced by `***`.
pub fn scrub(message: &str, secrets: &[String]) -> String {
    let mut out = message.to_string();
    // Longest first, so a secret that contains another is hidden whole.
    let mut secrets: Vec<&String> = secrets.iter().filter(|s| s.len() >= 2).collect();
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    for s in secrets {
        out = out.replace(s.as_str(), "***");
    }
    out
}

fn decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| s.to_string())
}

/// A boolean option (`true`/`false`, `yes`/`no`, `1`/`0`).
pub(crate) fn bool_option(
    source: &str,
    options: &BTreeMap<String, String>,
    key: &str,
    default: bool,
) -> Result<bool> {
    match options.get(key).map(|v| v.to_ascii_lowercase()) {
        None => Ok(default),
        Some(v) if matches!(v.as_str(), "true" | "yes" | "1") => Ok(true),
        Some(v) if matches!(v.as_str(), "false" | "no" | "0") => Ok(false),
        Some(v) => Err(Error::Options {
            source_name: source.to_string(),
            message: format!("option '{key}' must be true or false, not '{v}'"),
        }),
    }
}
