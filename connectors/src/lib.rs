//! Source connectors: each kind of external source (PostgreSQL, MySQL,
//! files on a local disk or an object store) becomes a DataFusion catalog
//! behind one small trait, and a [`Registry`] maps `TYPE name` in
//! `CREATE SOURCE` to its connector.
//!
//! Design, after DataFusion's `datafusion-table-providers` (which the
//! database connectors use) and delta-rs's storage options:
//!
//! - A connector checks a definition's options ([`Connector::options`]
//!   names every key, which are required and which are secret) and opens
//!   the source as a [`CatalogProvider`] whose schemas and tables mirror
//!   the source's (`crm.public.customers`). Queries then plan against
//!   ordinary DataFusion table providers: the database providers turn the
//!   projection, filters and limit DataFusion hands them into the SQL sent
//!   to the server (`EXPLAIN` shows it as `SqlExec sql=…`); file tables are
//!   DataFusion listing tables with their own projection and predicate
//!   pushdown.
//! - Secrets (passwords inside URLs, object-store keys) stay inside the
//!   definition: [`Registry::redacted`] is what any listing shows, and
//!   [`scrub`] removes them from every error message a connector returns.
//! - Bad rows in files are a property of the reader, not of the query:
//!   [`rows`] validates CSV and NDJSON record by record so a sync can stop
//!   at the first bad row (file, line, reason) or set bad rows aside.

mod connector;
mod database;
mod files;
pub mod rows;
pub mod store;
pub mod stream;

use std::collections::BTreeMap;
use std::sync::Arc;

use connector::secrets_of;
pub use connector::{Connector, Error, OpenedSource, OptionSpec, Result, redact_url, scrub};
pub use database::{MysqlConnector, PostgresConnector};
pub use files::{FilesConnector, FilesTable, as_files_table, validated_table};
pub use rows::{FileFormat, OnError};

/// The connectors known to an engine, by type name.
#[derive(Debug, Default)]
pub struct Registry {
    connectors: BTreeMap<&'static str, Arc<dyn Connector>>,
}

impl Registry {
    /// A registry with every built-in connector: `postgres`, `mysql`,
    /// `files`, and the message streams `nats` and `mqtt`.
    pub fn builtin() -> Self {
        let mut registry = Self::default();
        registry.register(Arc::new(PostgresConnector));
        registry.register(Arc::new(MysqlConnector));
        registry.register(Arc::new(FilesConnector));
        registry.register(Arc::new(stream::NatsConnector));
        registry.register(Arc::new(stream::MqttConnector));
        registry
    }

    /// Adds a connector.
    pub fn register(&mut self, connector: Arc<dyn Connector>) {
        self.connectors.insert(connector.type_name(), connector);
    }

    /// The connector for `type_name`.
    pub fn get(&self, type_name: &str) -> Result<Arc<dyn Connector>> {
        self.connectors
            .get(type_name.to_ascii_lowercase().as_str())
            .cloned()
            .ok_or_else(|| {
                Error::UnknownType(
                    type_name.to_string(),
                    self.connectors
                        .keys()
                        .copied()
                        .collect::<Vec<_>>()
                        .join(", "),
                )
            })
    }

    /// Checks a definition's options against its connector: every key
    /// known, every required key present, no empty value.
    pub fn validate(
        &self,
        name: &str,
        type_name: &str,
        options: &BTreeMap<String, String>,
    ) -> Result<()> {
        let connector = self.get(type_name)?;
        let specs = connector.options();
        let err = |message: String| Error::Options {
            source_name: name.to_string(),
            message,
        };
        for key in options.keys() {
            if !specs.iter().any(|s| s.key == key) {
                let known: Vec<&str> = specs.iter().map(|s| s.key).collect();
                return Err(err(format!(
                    "unknown option '{key}' for a {type_name} source (expected one of: {})",
                    known.join(", ")
                )));
            }
        }
        for spec in specs.iter().filter(|s| s.required) {
            match options.get(spec.key) {
                None => {
                    return Err(err(format!(
                        "option '{}' is required for a {type_name} source",
                        spec.key
                    )));
                }
                Some(v) if v.trim().is_empty() => {
                    return Err(err(format!("option '{}' is empty", spec.key)));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// The options as listings show them: secrets as `***`, passwords in
    /// URLs as `***`.
    pub fn redacted(
        &self,
        type_name: &str,
        options: &BTreeMap<String, String>,
    ) -> BTreeMap<String, String> {
        let specs = self.get(type_name).map(|c| c.options()).unwrap_or_default();
        options
            .iter()
            .map(|(k, v)| {
                let spec = specs.iter().find(|s| s.key == k);
                let shown = match spec {
                    Some(s) if s.secret => "***".to_string(),
                    Some(s) if s.url => redact_url(v),
                    // Unknown keys cannot be judged: never show them.
                    None => "***".to_string(),
                    Some(_) => v.clone(),
                };
                (k.clone(), shown)
            })
            .collect()
    }

    /// Every secret value of a definition (secret options and passwords in
    /// URLs), for [`scrub`].
    pub fn secrets(&self, type_name: &str, options: &BTreeMap<String, String>) -> Vec<String> {
        let specs = self.get(type_name).map(|c| c.options()).unwrap_or_default();
        secrets_of(specs, options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn definitions_are_checked_and_secrets_never_shown() {
        let registry = Registry::builtin();
        let pg = opts(&[("url", "postgres://ana:s3cr%40t@db.example:5432/crm")]);
        registry.validate("crm", "postgres", &pg).unwrap();
        let shown = registry.redacted("postgres", &pg);
        assert_eq!(shown["url"], "postgres://ana:***@db.example:5432/crm");
        let secrets = registry.secrets("postgres", &pg);
        assert!(secrets.contains(&"s3cr@t".to_string()), "{secrets:?}");
        assert_eq!(
            scrub("password s3cr@t rejected for s3cr%40t", &secrets),
            "password *** rejected for ***"
        );

        let files = opts(&[
            ("location", "s3://bucket/raw"),
            ("secret_access_key", "hunter22"),
            ("access_key_id", "AKIA"),
        ]);
        registry.validate("raw", "files", &files).unwrap();
        let shown = registry.redacted("files", &files);
        assert_eq!(shown["secret_access_key"], "***");
        assert_eq!(shown["location"], "s3://bucket/raw");

        let err = registry
            .validate("crm", "postgres", &opts(&[("uri", "x")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown option 'uri'"), "{err}");
        let err = registry
            .validate("raw", "files", &opts(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("option 'location' is required"), "{err}");
        let err = registry.get("oracle").unwrap_err().to_string();
        assert!(err.contains("files, mqtt, mysql, nats, postgres"), "{err}");
    }
}
