//! The lake: a root URI on an object store holding Delta tables.
//!
//! Layout (self-describing — a new process pointed at the same root sees
//! everything, there is no catalog database beside it):
//!
//! ```text
//! <root>/tables/<schema>/.schema.json    one per schema created with CREATE SCHEMA
//! <root>/tables/<schema>/<table>/        a plain Delta table (_delta_log/, parquet)
//! ```
//!
//! The schema `public` always exists. All I/O goes through one
//! [`ObjectStore`] for the root ("/" is the root of the bucket or file
//! system) that is handed to delta-rs for every table, so a `memory://` lake
//! is shared by all tables of a process and an `s3://` lake uses one client.

pub mod cache;
pub mod catalog;
pub mod docs;
pub mod keys;
pub(crate) mod ledger;
pub mod nan;
pub(crate) mod pass;
pub mod scan;
pub(crate) mod table;
pub mod types;
pub mod write;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

use sha2::Digest;

use deltalake::logstore::{
    LogStore, LogStoreFactory, StorageConfig, default_logstore, logstore_factories,
};
use deltalake::{DeltaTable, DeltaTableBuilder, DeltaTableError};
use futures::{StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::error::{Error, Result};
pub use crate::table_name::{DEFAULT_SCHEMA, LAKE_CATALOG, SYSTEM_SCHEMA, TableName};

/// Catalog and schema holding the per-statement time-travel snapshots.
pub(crate) const INTERNAL_CATALOG: &str = "__autolake";
pub(crate) const TIME_TRAVEL_SCHEMA: &str = "time_travel";
const SCHEMA_MARKER: &str = ".schema.json";

/// What CREATE SCHEMA records about a schema.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SchemaInfo {
    /// Who created it.
    pub owner: String,
    /// When, in milliseconds since the epoch.
    pub created_at: i64,
}

/// A lake root and the store that reaches it.
#[derive(Debug)]
pub struct Lake {
    uri: String,
    /// Under which URL sessions register [`Lake::store`] for scans.
    store_url: datafusion::execution::object_store::ObjectStoreUrl,
    root: Url,
    store: Arc<dyn ObjectStore>,
    root_path: Path,
    options: HashMap<String, String>,
}

impl Lake {
    /// Opens the lake at `uri` (a local path, `file://`, `memory://name` or
    /// `s3://bucket/prefix`), checking that it can be reached.
    ///
    /// `options` are object-store options (for S3: `endpoint`, `region`,
    /// `access_key_id`, `secret_access_key`, `allow_http`, …); S3 also reads
    /// the usual `AWS_*` environment variables.
    pub async fn open(uri: &str, options: &HashMap<String, String>) -> Result<Arc<Lake>> {
        let lake_err = |reason: String| Error::Lake {
            uri: uri.to_string(),
            reason,
        };
        let (root, store) = resolve_store(uri, options).map_err(lake_err)?;
        let root_path =
            Path::from_url_path(root.path()).map_err(|e| lake_err(format!("invalid path: {e}")))?;
        // Named after the root, so every process that opens this lake (the
        // executors of a cluster among them) finds the store under the URL
        // a plan names; the root holds no credentials.
        let store_url = datafusion::execution::object_store::ObjectStoreUrl::parse(format!(
            "lake://{}",
            &crate::governance::hex(&sha2::Sha256::digest(root.as_str().as_bytes()))[..32]
        ))
        .map_err(|e| lake_err(e.to_string()))?;
        let lake = Lake {
            uri: uri.to_string(),
            store_url,
            root,
            store,
            root_path,
            options: options.clone(),
        };
        // One round trip proves the root is reachable and readable.
        lake.store
            .list_with_delimiter(Some(&lake.tables_path()))
            .await
            .map_err(|e| lake_err(e.to_string()))?;
        Ok(Arc::new(lake))
    }

    /// The URI the lake was opened with.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// The root as a URL (always ending in `/`).
    pub fn root_url(&self) -> &Url {
        &self.root
    }

    /// The store for the root.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The URL under which sessions register the store for scans.
    pub fn store_url(&self) -> &datafusion::execution::object_store::ObjectStoreUrl {
        &self.store_url
    }

    /// Where a table's files live within the store.
    pub fn table_path(&self, name: &TableName) -> Path {
        self.schema_path(&name.schema).join(name.table.as_str())
    }

    /// Object-store options the lake was opened with.
    pub fn options(&self) -> &HashMap<String, String> {
        &self.options
    }

    /// Path of `rel` under the root, within the store.
    pub fn path(&self, rel: &str) -> Path {
        rel.split('/')
            .filter(|p| !p.is_empty())
            .fold(self.root_path.clone(), |p, part| p.join(part))
    }

    fn tables_path(&self) -> Path {
        self.path("tables")
    }

    fn schema_path(&self, schema: &str) -> Path {
        self.tables_path().join(schema)
    }

    /// Where a table's Delta files live.
    pub fn table_url(&self, name: &TableName) -> Url {
        let mut url = self.root.clone();
        url.path_segments_mut()
            .expect("lake roots are hierarchical URLs")
            .pop_if_empty()
            .extend(["tables", &name.schema, &name.table, ""]);
        url
    }

    /// The names of all schemas, `public` included.
    pub async fn list_schemas(&self) -> Result<BTreeSet<String>> {
        let listing = self
            .store
            .list_with_delimiter(Some(&self.tables_path()))
            .await?;
        let mut out: BTreeSet<String> = listing
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            // AutoLake's own Delta tables (`system.drift_metrics`, …) live
            // beside the user's but belong to the read-only system schema.
            .filter(|s| s != SYSTEM_SCHEMA)
            .collect();
        out.insert(DEFAULT_SCHEMA.to_string());
        Ok(out)
    }

    /// Whether a schema exists.
    pub async fn schema_exists(&self, schema: &str) -> Result<bool> {
        if schema == DEFAULT_SCHEMA {
            return Ok(true);
        }
        let listing = self
            .store
            .list_with_delimiter(Some(&self.schema_path(schema)))
            .await?;
        Ok(!listing.objects.is_empty() || !listing.common_prefixes.is_empty())
    }

    /// Creates a schema. Returns false when it existed.
    pub async fn create_schema(&self, schema: &str, owner: &str) -> Result<bool> {
        validate_name("schema", schema)?;
        if self.schema_exists(schema).await? {
            return Ok(false);
        }
        let info = SchemaInfo {
            owner: owner.to_string(),
            created_at: chrono::Utc::now().timestamp_millis(),
        };
        let body = serde_json::to_vec(&info).map_err(|e| Error::internal(e.to_string()))?;
        self.store
            .put(
                &self.schema_path(schema).join(SCHEMA_MARKER),
                PutPayload::from(body),
            )
            .await?;
        Ok(true)
    }

    /// What CREATE SCHEMA recorded, if the schema was created that way.
    pub async fn schema_info(&self, schema: &str) -> Result<Option<SchemaInfo>> {
        let path = self.schema_path(schema).join(SCHEMA_MARKER);
        match self.store.get(&path).await {
            Ok(r) => {
                let bytes = r.bytes().await?;
                Ok(serde_json::from_slice(&bytes).ok())
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes a schema's marker and, with `cascade`, its tables.
    pub async fn drop_schema(&self, schema: &str, cascade: bool) -> Result<()> {
        let tables = self.list_tables(schema).await?;
        if !tables.is_empty() && !cascade {
            return Err(Error::invalid(format!(
                "schema {LAKE_CATALOG}.{schema} is not empty (tables: {}); drop its tables first or use DROP SCHEMA … CASCADE",
                tables.into_iter().collect::<Vec<_>>().join(", ")
            )));
        }
        self.delete_prefix(&self.schema_path(schema)).await
    }

    /// Names of the tables in a schema.
    pub async fn list_tables(&self, schema: &str) -> Result<BTreeSet<String>> {
        let listing = self
            .store
            .list_with_delimiter(Some(&self.schema_path(schema)))
            .await?;
        Ok(listing
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect())
    }

    /// A table handle that is not loaded yet (for creating tables).
    pub fn table_handle(&self, name: &TableName) -> Result<DeltaTable> {
        let url = self.table_url(name);
        Ok(DeltaTableBuilder::from_url(url.clone())?
            .with_storage_backend(Arc::clone(&self.store), url)
            .with_storage_options(self.options.clone())
            .build()?)
    }

    /// Loads a table at its latest version, or `None` when it does not exist.
    pub async fn load_table(&self, name: &TableName) -> Result<Option<DeltaTable>> {
        // A table exists once its first commit does; asking the kernel to
        // load a missing table is an error (and noise in its log).
        let log = self.table_path(name).join("_delta_log");
        if self
            .store
            .list(Some(&log))
            .next()
            .await
            .transpose()?
            .is_none()
        {
            return Ok(None);
        }
        let mut table = self.table_handle(name)?;
        match table.load().await {
            Ok(()) => Ok(Some(table)),
            Err(DeltaTableError::NotATable(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Loads a table at its latest version, or a "does not exist" error.
    pub async fn require_table(&self, name: &TableName) -> Result<DeltaTable> {
        self.load_table(name).await?.ok_or_else(|| Error::NotFound {
            kind: "table",
            name: name.to_string(),
        })
    }

    /// Deletes everything under a table's location.
    pub async fn drop_table(&self, name: &TableName) -> Result<()> {
        self.delete_prefix(&self.table_path(name)).await
    }

    async fn delete_prefix(&self, prefix: &Path) -> Result<()> {
        let locations = self.store.list(Some(prefix)).map_ok(|m| m.location).boxed();
        self.store
            .delete_stream(locations)
            .try_collect::<Vec<_>>()
            .await?;
        // Object stores have no folders, but a local file system keeps the
        // emptied ones, which would still list as schemas and tables.
        if self.root.scheme() == "file" {
            let url = Url::parse(&format!("file:///{prefix}/"))
                .map_err(|e| Error::internal(e.to_string()))?;
            if let Ok(dir) = url.to_file_path() {
                match std::fs::remove_dir_all(&dir) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                    _ => {}
                }
            }
        }
        Ok(())
    }
}

/// Checks a schema or table name is usable as one path segment.
pub fn validate_name(kind: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && !name.contains(['/', '\\', '\0']);
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "invalid {kind} name '{name}': names must be 1–255 characters, not start with '.', and not contain '/' or '\\'"
        )))
    }
}

/// Resolves a lake URI into a root URL (ending in `/`) and the store whose
/// "/" is the root of its bucket or file system.
fn resolve_store(
    uri: &str,
    options: &HashMap<String, String>,
) -> std::result::Result<(Url, Arc<dyn ObjectStore>), String> {
    let url = match Url::parse(uri) {
        Ok(url) if url.scheme().len() > 1 => url,
        // A plain path (or a Windows drive letter parsed as a scheme).
        _ => {
            let path = std::path::Path::new(uri);
            std::fs::create_dir_all(path).map_err(|e| e.to_string())?;
            let abs = std::fs::canonicalize(path).map_err(|e| e.to_string())?;
            Url::from_directory_path(&abs).map_err(|()| format!("not a usable path: {uri}"))?
        }
    };
    let mut root = url.clone();
    if !root.path().ends_with('/') {
        root.set_path(&format!("{}/", root.path()));
    }
    let store: Arc<dyn ObjectStore> = match url.scheme() {
        "file" => {
            let path = url
                .to_file_path()
                .map_err(|()| format!("not a local path: {uri}"))?;
            std::fs::create_dir_all(&path).map_err(|e| e.to_string())?;
            Arc::new(LocalFileSystem::new())
        }
        "memory" => memory_store(url.host_str().unwrap_or_default()),
        "s3" | "s3a" => {
            register_logstore(url.scheme());
            autolake_connectors::store::s3_store(&url, options)?
        }
        other => {
            return Err(format!(
                "unsupported lake scheme '{other}': use a local path, file://, memory:// or s3://"
            ));
        }
    };
    Ok((root, store))
}

/// `memory://name` lakes are shared by every engine of the process that
/// opens the same name, so tests can open a second engine on the same lake.
fn memory_store(name: &str) -> Arc<dyn ObjectStore> {
    static STORES: OnceLock<Mutex<HashMap<String, Arc<dyn ObjectStore>>>> = OnceLock::new();
    let mut stores = STORES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    Arc::clone(
        stores
            .entry(name.to_string())
            .or_insert_with(|| Arc::new(InMemory::new())),
    )
}

/// delta-rs knows log stores for `file` and `memory` only; for our own S3
/// store the default log store (commits by put-if-absent, which S3 supports
/// natively) is the right one.
fn register_logstore(scheme: &str) {
    #[derive(Debug)]
    struct DefaultFactory;
    impl LogStoreFactory for DefaultFactory {
        fn with_options(
            &self,
            prefixed_store: deltalake::logstore::ObjectStoreRef,
            root_store: deltalake::logstore::ObjectStoreRef,
            location: &Url,
            options: &StorageConfig,
        ) -> deltalake::DeltaResult<Arc<dyn LogStore>> {
            Ok(default_logstore(
                prefixed_store,
                root_store,
                location,
                options,
            ))
        }
    }
    if let Ok(url) = Url::parse(&format!("{scheme}://")) {
        let factories = logstore_factories();
        if !factories.contains_key(&url) {
            factories.insert(url, Arc::new(DefaultFactory));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_layout_and_schemas() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path().to_str().unwrap(), &HashMap::new())
            .await
            .unwrap();
        assert!(lake.root_url().as_str().ends_with('/'));
        let url = lake.table_url(&TableName::new("s", "t"));
        assert!(url.as_str().ends_with("/tables/s/t/"), "{url}");
        assert_eq!(lake.list_schemas().await.unwrap().len(), 1);
        assert!(lake.create_schema("s", "admin").await.unwrap());
        assert!(!lake.create_schema("s", "admin").await.unwrap());
        assert!(lake.list_schemas().await.unwrap().contains("s"));
        assert_eq!(lake.schema_info("s").await.unwrap().unwrap().owner, "admin");
        lake.drop_schema("s", false).await.unwrap();
        assert!(!lake.schema_exists("s").await.unwrap());
    }

    #[tokio::test]
    async fn rejects_unknown_scheme_and_bad_names() {
        let err = Lake::open("ftp://x/y", &HashMap::new()).await.unwrap_err();
        assert!(err.to_string().contains("unsupported lake scheme"), "{err}");
        assert!(validate_name("table", "a/b").is_err());
        assert!(validate_name("table", ".x").is_err());
        assert!(validate_name("table", "sales_2026").is_ok());
    }
}
