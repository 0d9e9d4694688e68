//! Named JSON documents in the lake: the definitions of monitors, sources
//! and the like, one file each at `<root>/<folder>/<name>.json`.
//!
//! A new document is written with a create-only put, so two processes
//! creating the same name cannot both succeed; any process on the lake sees
//! every document.

use std::marker::PhantomData;
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Lake;
use crate::error::{Error, Result};

/// The documents of one kind.
#[derive(Debug)]
pub struct DocStore<T> {
    lake: Arc<Lake>,
    folder: &'static str,
    kind: &'static str,
    _doc: PhantomData<fn() -> T>,
}

impl<T> Clone for DocStore<T> {
    fn clone(&self) -> Self {
        Self {
            lake: Arc::clone(&self.lake),
            folder: self.folder,
            kind: self.kind,
            _doc: PhantomData,
        }
    }
}

impl<T: Serialize + DeserializeOwned> DocStore<T> {
    /// Documents of `kind` (for messages) under `<root>/<folder>/`.
    pub fn new(lake: Arc<Lake>, folder: &'static str, kind: &'static str) -> Self {
        Self {
            lake,
            folder,
            kind,
            _doc: PhantomData,
        }
    }

    fn path(&self, name: &str) -> object_store::path::Path {
        self.lake.path(self.folder).join(format!("{name}.json"))
    }

    /// Saves a new document; `false` when one of that name exists.
    pub async fn create(&self, name: &str, doc: &T) -> Result<bool> {
        let body = serde_json::to_vec_pretty(doc)
            .map_err(|e| Error::invalid(format!("{} {name} cannot be saved: {e}", self.kind)))?;
        let put = self
            .lake
            .store()
            .put_opts(
                &self.path(name),
                PutPayload::from(body),
                PutOptions::from(PutMode::Create),
            )
            .await;
        match put {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Saves a document, replacing one of that name.
    pub async fn put(&self, name: &str, doc: &T) -> Result<()> {
        let body = serde_json::to_vec_pretty(doc)
            .map_err(|e| Error::invalid(format!("{} {name} cannot be saved: {e}", self.kind)))?;
        self.lake
            .store()
            .put(&self.path(name), PutPayload::from(body))
            .await?;
        Ok(())
    }

    /// The document called `name`, if any.
    pub async fn get(&self, name: &str) -> Result<Option<T>> {
        match self.lake.store().get(&self.path(name)).await {
            Ok(found) => {
                let bytes = found.bytes().await?;
                serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                    Error::internal(format!("{} {name} is unreadable: {e}", self.kind))
                })
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes a document; `false` when there was none.
    pub async fn delete(&self, name: &str) -> Result<bool> {
        if self.get(name).await?.is_none() {
            return Ok(false);
        }
        self.lake.store().delete(&self.path(name)).await?;
        Ok(true)
    }

    /// Every document's name, sorted.
    pub async fn names(&self) -> Result<Vec<String>> {
        let prefix = self.lake.path(self.folder);
        let metas: Vec<_> = self.lake.store().list(Some(&prefix)).try_collect().await?;
        let mut names: Vec<String> = metas
            .iter()
            .filter_map(|m| {
                m.location
                    .filename()
                    .and_then(|f| f.strip_suffix(".json"))
                    .map(str::to_string)
            })
            .collect();
        names.sort();
        Ok(names)
    }

    /// Every document, by name.
    pub async fn list(&self) -> Result<Vec<T>> {
        let mut out = Vec::new();
        for name in self.names().await? {
            // Dropped between listing and reading: skip it.
            if let Some(doc) = self.get(&name).await? {
                out.push(doc);
            }
        }
        Ok(out)
    }
}
