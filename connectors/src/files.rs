//! Files sources: CSV, NDJSON and Parquet on a local disk or an
//! S3-compatible store.
//!
//! `location` is a folder, one file, or a glob (`/data/*.csv`,
//! `s3://bucket/raw/2026-*.parquet`). Every file and every sub-folder
//! directly under a folder is one table of schema `public`, named after its
//! stem in lower case (`lineitem.parquet` → `public.lineitem`; a folder's
//! table holds all of its files); with a glob, every matching file is a
//! table. Hidden entries (`.x`, `_x`) are skipped.
//!
//! Tables are DataFusion listing tables (their projection and predicate
//! pushdown, Parquet statistics pruning), wrapped in [`FilesTable`] so a
//! sync can find the files and their format again and read CSV/NDJSON
//! through the validating reader of [`crate::rows`].

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::catalog::{
    MemoryCatalogProvider, MemorySchemaProvider, SchemaProvider, Session, TableProvider,
};
use datafusion::datasource::TableType;
use datafusion::datasource::file_format::FileFormat as DFFileFormat;
use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::file_format::json::JsonFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::error::Result as DFResult;
use datafusion::execution::SessionState;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};
use url::Url;

use crate::connector::{
    Connector, Error, OpenedSource, OptionSpec, Result, bool_option, scrub, secrets_of,
};
use crate::rows::{BadRows, FileFormat, OnError, ValidatedFiles};
use crate::store::{S3_OPTIONS, location_url, store_for};

/// `TYPE files`.
#[derive(Debug, Default)]
pub struct FilesConnector;

const FILES_OPTIONS: &[OptionSpec] = &[
    OptionSpec::required("location"),
    OptionSpec::plain("format"),
    OptionSpec::plain("header"),
    OptionSpec::plain("delimiter"),
    OptionSpec::plain("on_error"),
    OptionSpec::plain(S3_OPTIONS[0]),
    OptionSpec::plain(S3_OPTIONS[1]),
    OptionSpec::plain(S3_OPTIONS[2]),
    OptionSpec::secret(S3_OPTIONS[3]),
    OptionSpec::secret(S3_OPTIONS[4]),
    OptionSpec::plain(S3_OPTIONS[5]),
];

/// One table of a files source.
#[derive(Debug)]
pub struct FilesTable {
    inner: ListingTable,
    /// The files, in name order.
    pub files: Vec<ObjectMeta>,
    /// Their format.
    pub format: FileFormat,
    /// CSV: the first line names the columns.
    pub header: bool,
    /// CSV: the field separator.
    pub delimiter: u8,
    /// Bad-row policy.
    pub on_error: OnError,
    /// The store the files are on.
    pub store: Arc<dyn ObjectStore>,
    /// The URL of the store's root (`file:///`, `s3://bucket/`).
    pub store_url: Url,
}

impl FilesTable {
    /// A file's name as errors and `_source` give it (its full URL).
    pub fn file_url(&self, file: &ObjectMeta) -> String {
        format!("{}{}", self.store_url, file.location)
    }
}

#[async_trait]
impl TableProvider for FilesTable {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        self.inner.scan(state, projection, filters, limit).await
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DFResult<Vec<TableProviderFilterPushDown>> {
        self.inner.supports_filters_pushdown(filters)
    }
}

/// The parsed options of a files source.
struct Settings {
    format: Option<FileFormat>,
    header: bool,
    delimiter: u8,
    on_error: OnError,
}

fn settings(name: &str, options: &BTreeMap<String, String>) -> Result<Settings> {
    let err = |message: String| Error::Options {
        source_name: name.to_string(),
        message,
    };
    let format = match options.get("format") {
        None => None,
        Some(f) => Some(FileFormat::parse(f).ok_or_else(|| {
            err(format!(
                "format '{f}' is not one of csv, json (newline-delimited), parquet"
            ))
        })?),
    };
    let delimiter = match options.get("delimiter").map(String::as_str) {
        None => b',',
        Some("\\t" | "tab") => b'\t',
        Some(d) if d.len() == 1 && d.is_ascii() => d.as_bytes()[0],
        Some(d) => {
            return Err(err(format!(
                "delimiter '{d}' must be one ASCII character (or '\\t')"
            )));
        }
    };
    let on_error = match options.get("on_error").map(|s| s.to_ascii_lowercase()) {
        None => OnError::Fail,
        Some(s) if s == "fail" => OnError::Fail,
        Some(s) if s == "quarantine" => OnError::Quarantine,
        Some(s) => {
            return Err(err(format!(
                "on_error '{s}' is not one of fail, quarantine"
            )));
        }
    };
    Ok(Settings {
        format,
        header: bool_option(name, options, "header", true)?,
        delimiter,
        on_error,
    })
}

/// A location split at its first glob character: the folder to list and
/// the pattern its files must match (none without a glob).
fn split_glob(location: &str) -> (String, Option<String>) {
    match location.find(['*', '?', '[']) {
        None => (location.to_string(), None),
        Some(i) => {
            let base = match location[..i].rfind('/') {
                Some(slash) => location[..=slash].to_string(),
                None => "./".to_string(),
            };
            (base, Some(location.to_string()))
        }
    }
}

/// A table name from a file or folder name: its stem, lower case, with
/// anything but letters, digits and `_` turned into `_`.
fn table_name(entry: &str) -> String {
    let stem = entry.split('.').next().unwrap_or(entry);
    stem.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

fn extension_format(path: &Path) -> Option<FileFormat> {
    path.extension().and_then(FileFormat::parse)
}

fn hidden(name: &str) -> bool {
    name.starts_with('.') || name.starts_with('_')
}

/// A table to be: its name, listing URL, files and format by extension.
type Entry = (String, String, Vec<ObjectMeta>, Option<FileFormat>);

/// The table of one file; `None` for hidden files.
fn file_entry(store_url: &Url, file: ObjectMeta) -> std::result::Result<Option<Entry>, String> {
    let fname = file.location.filename().unwrap_or_default().to_string();
    if hidden(&fname) {
        return Ok(None);
    }
    let url = store_url
        .join(file.location.as_ref())
        .map_err(|e| e.to_string())?;
    let format = extension_format(&file.location);
    Ok(Some((
        table_name(&fname),
        url.to_string(),
        vec![file],
        format,
    )))
}

#[async_trait]
impl Connector for FilesConnector {
    fn type_name(&self) -> &'static str {
        "files"
    }

    fn options(&self) -> &'static [OptionSpec] {
        FILES_OPTIONS
    }

    async fn open(
        &self,
        name: &str,
        options: &BTreeMap<String, String>,
        state: &SessionState,
    ) -> Result<OpenedSource> {
        let secrets = secrets_of(FILES_OPTIONS, options);
        let fail = |message: String| Error::Source {
            source_name: name.to_string(),
            message: scrub(&message, &secrets),
        };
        let settings = settings(name, options)?;
        let location = options
            .get("location")
            .ok_or_else(|| fail("option 'location' is required".to_string()))?;
        let (base, pattern) = split_glob(location);
        let base_url = location_url(&base).map_err(&fail)?;
        let store = store_for(&base_url, options).map_err(&fail)?;
        let mut store_url = base_url.clone();
        store_url.set_path("/");
        store_url.set_query(None);
        let base_path = Path::from_url_path(base_url.path()).map_err(|e| fail(e.to_string()))?;

        let mut entries: Vec<Entry> = Vec::new();
        let is_folder = base_url.path().ends_with('/') || pattern.is_some();
        if let Some(pattern) = &pattern {
            let glob_text = match location_url(&base) {
                Ok(u) if Url::parse(location).is_err() => {
                    // A local glob: match against the absolute path.
                    format!(
                        "{}{}",
                        u.path().trim_start_matches('/'),
                        &pattern[base.len()..]
                    )
                }
                _ => {
                    let u = Url::parse(pattern).map_err(|e| fail(e.to_string()))?;
                    format!(
                        "{}{}",
                        base_url.path().trim_start_matches('/'),
                        &u.path()[base_url.path().len().min(u.path().len())..]
                    )
                }
            };
            let glob = glob::Pattern::new(&glob_text)
                .map_err(|e| fail(format!("invalid glob {pattern}: {e}")))?;
            let mut files: Vec<ObjectMeta> = store
                .list(Some(&base_path))
                .try_collect()
                .await
                .map_err(|e| fail(format!("cannot list {location}: {e}")))?;
            files.sort_by(|a, b| a.location.cmp(&b.location));
            for file in files {
                let options = glob::MatchOptions {
                    require_literal_separator: true,
                    ..glob::MatchOptions::new()
                };
                if glob.matches_with(file.location.as_ref(), options) {
                    entries.extend(file_entry(&store_url, file).map_err(&fail)?);
                }
            }
        } else if is_folder {
            let listing = store
                .list_with_delimiter(Some(&base_path))
                .await
                .map_err(|e| fail(format!("cannot list {location}: {e}")))?;
            let mut objects = listing.objects;
            objects.sort_by(|a, b| a.location.cmp(&b.location));
            for file in objects {
                entries.extend(file_entry(&store_url, file).map_err(&fail)?);
            }
            let mut folders = listing.common_prefixes;
            folders.sort();
            for folder in folders {
                let fname = folder.filename().unwrap_or_default().to_string();
                if hidden(&fname) {
                    continue;
                }
                let mut files: Vec<ObjectMeta> = store
                    .list(Some(&folder))
                    .try_filter(|f| {
                        futures::future::ready(!hidden(f.location.filename().unwrap_or_default()))
                    })
                    .try_collect()
                    .await
                    .map_err(|e| fail(format!("cannot list {folder}: {e}")))?;
                if files.is_empty() {
                    continue;
                }
                files.sort_by(|a, b| a.location.cmp(&b.location));
                let format = extension_format(&files[0].location);
                let url = store_url
                    .join(&format!("{folder}/"))
                    .map_err(|e| fail(e.to_string()))?;
                entries.push((table_name(&fname), url.to_string(), files, format));
            }
        } else {
            let meta = store
                .head(&base_path)
                .await
                .map_err(|e| fail(format!("cannot read {location}: {e}")))?;
            let fname = meta.location.filename().unwrap_or_default().to_string();
            let format = extension_format(&meta.location);
            entries.push((table_name(&fname), base_url.to_string(), vec![meta], format));
        }
        if entries.is_empty() {
            return Err(fail(format!("no files found at {location}")));
        }

        let stores = if store_url.scheme() == "file" {
            Vec::new()
        } else {
            state
                .runtime_env()
                .register_object_store(&store_url, Arc::clone(&store));
            vec![(store_url.clone(), Arc::clone(&store))]
        };
        let schema = MemorySchemaProvider::new();
        for (table, url, files, ext_format) in entries {
            let format = settings.format.or(ext_format).ok_or_else(|| {
                fail(format!(
                    "cannot tell the format of {url}: name it with OPTIONS (format 'csv'|'json'|'parquet')"
                ))
            })?;
            if schema.table_exist(&table) {
                return Err(fail(format!(
                    "two entries under {location} are both table '{table}': rename one or narrow the location"
                )));
            }
            let df_format: Arc<dyn DFFileFormat> = match format {
                FileFormat::Csv => Arc::new(
                    CsvFormat::default()
                        .with_has_header(settings.header)
                        .with_delimiter(settings.delimiter),
                ),
                FileFormat::Json => Arc::new(JsonFormat::default()),
                FileFormat::Parquet => Arc::new(ParquetFormat::default()),
            };
            let table_url = ListingTableUrl::parse(&url).map_err(|e| fail(e.to_string()))?;
            // A folder's files are all of its files, whatever their suffix.
            let listing = ListingOptions::new(df_format).with_file_extension("");
            let file_schema = match format {
                // Text formats: tolerant inference from the first file, so
                // a bad row does not decide a column's type.
                FileFormat::Csv | FileFormat::Json => {
                    let first = &files[0];
                    let reader = crate::rows::open_file(&store, store_url.as_str(), first)
                        .await
                        .map_err(&fail)?;
                    let inferred = if format == FileFormat::Csv {
                        crate::rows::infer_csv_schema(reader, settings.header, settings.delimiter)
                    } else {
                        crate::rows::infer_json_schema(reader)
                    };
                    Arc::new(inferred.map_err(|e| {
                        fail(format!(
                            "cannot read the columns of {store_url}{}: {e}",
                            first.location
                        ))
                    })?)
                }
                FileFormat::Parquet => listing
                    .infer_schema(state, &table_url)
                    .await
                    .map_err(|e| fail(format!("cannot read the columns of {url}: {e}")))?,
            };
            let config = ListingTableConfig::new(table_url)
                .with_listing_options(listing)
                .with_schema(file_schema);
            let inner = ListingTable::try_new(config).map_err(|e| fail(e.to_string()))?;
            let files_table = FilesTable {
                inner,
                files,
                format,
                header: settings.header,
                delimiter: settings.delimiter,
                on_error: settings.on_error,
                store: Arc::clone(&store),
                store_url: store_url.clone(),
            };
            schema
                .register_table(table, Arc::new(files_table))
                .map_err(|e| fail(e.to_string()))?;
        }
        let catalog = MemoryCatalogProvider::new();
        datafusion::catalog::CatalogProvider::register_schema(&catalog, "public", Arc::new(schema))
            .map_err(|e| fail(e.to_string()))?;
        Ok(OpenedSource {
            catalog: Arc::new(catalog),
            stores,
        })
    }
}

/// The files table behind a provider, if it is one.
/// A table reading `table`'s files record by record: good rows as the
/// table's columns; bad rows fail the scan (`OnError::Fail`) or go to
/// `bad` (`OnError::Quarantine`). Parquet files have no bad rows of this
/// kind and are read as they are.
pub fn validated_table(
    table: &FilesTable,
    bad: BadRows,
) -> datafusion::error::Result<Arc<dyn TableProvider>> {
    let schema = table.schema();
    let partition = ValidatedFiles {
        schema: Arc::clone(&schema),
        files: table.files.clone(),
        store: Arc::clone(&table.store),
        store_url: table.store_url.to_string(),
        format: table.format,
        header: table.header,
        delimiter: table.delimiter,
        on_error: table.on_error,
        bad,
    };
    Ok(Arc::new(StreamingTable::try_new(
        schema,
        vec![Arc::new(partition)],
    )?))
}

pub fn as_files_table(provider: &Arc<dyn TableProvider>) -> Option<&FilesTable> {
    let any: &dyn Any = provider.as_ref();
    any.downcast_ref::<FilesTable>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_globs() {
        assert_eq!(table_name("LineItem.parquet"), "lineitem");
        assert_eq!(table_name("orders-2026.csv.gz"), "orders_2026");
        assert_eq!(
            split_glob("/data/raw/*.csv"),
            (
                "/data/raw/".to_string(),
                Some("/data/raw/*.csv".to_string())
            )
        );
        assert_eq!(split_glob("/data/raw/"), ("/data/raw/".to_string(), None));
    }
}
