//! The Arrow Flight SQL service.
//!
//! - **Authentication.** `Handshake` takes HTTP Basic credentials (the
//!   `authorization` header, as ADBC and pyarrow send them), checks them
//!   against the lake's users and answers with a random bearer token, both
//!   as the `authorization` response header and as the handshake payload.
//!   Each token owns one engine [`Session`] (so `SET`, external tables and
//!   views persist across a client's calls) and expires after the
//!   configured time; every other call needs a live token and is refused
//!   with `Unauthenticated` otherwise.
//! - **Statements.** `GetFlightInfo(CommandStatementQuery)` runs the
//!   statement through the session's one funnel (so every AutoLake
//!   statement works, DDL and DML included) and parks its result stream
//!   under a random handle; the ticket names the handle, and `DoGet` hands
//!   the stream to the client batch by batch. DataFusion produces batches
//!   only as the client reads them, so a large result is never held whole,
//!   and a client that goes away drops the stream, which cancels the
//!   query. Results nobody fetches are dropped after a while.
//!   `DoPut(CommandStatementUpdate)` runs a statement and returns the rows
//!   it changed.
//! - **Metadata.** Catalogs, schemas and tables (with their Arrow schemas
//!   on request) come from the session's catalog, filtered by the builders
//!   arrow-flight provides; `GetSqlInfo` describes this server truthfully.
//! - **Errors** become gRPC codes in one place, [`status`].

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray};
use arrow::datatypes::UInt64Type;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    CommandGetCatalogs, CommandGetDbSchemas, CommandGetSqlInfo, CommandGetTableTypes,
    CommandGetTables, CommandStatementQuery, CommandStatementUpdate, ProstMessageExt, SqlInfo,
    TicketStatementQuery,
};
use arrow_flight::{
    FlightData, FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse,
    Ticket,
};
use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;
use datafusion::datasource::TableType;
use datafusion::execution::SendableRecordBatchStream;
use futures::{Stream, TryStreamExt};
use prost::Message;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status, Streaming};

use super::users::{UserStore, random_token};
use crate::error::Error;
use crate::principal::Interface;
use crate::session::{Engine, Session};

/// How long a result waits for its `DoGet`.
const RESULT_TTL: Duration = Duration::from_secs(600);

type FlightStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// A logged-in client.
struct Login {
    session: Arc<Session>,
    expires: Instant,
}

/// A statement's result waiting for its `DoGet`.
struct Pending {
    token: String,
    stream: SendableRecordBatchStream,
    created: Instant,
}

/// AutoLake's Flight SQL service.
pub struct AutoLakeFlightSql {
    engine: Arc<Engine>,
    users: UserStore,
    token_ttl: Duration,
    logins: Mutex<HashMap<String, Login>>,
    results: Mutex<HashMap<String, Pending>>,
    sql_info: SqlInfoData,
}

impl std::fmt::Debug for AutoLakeFlightSql {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AutoLakeFlightSql")
            .field("lake", &self.engine.lake().uri())
            .finish()
    }
}

impl AutoLakeFlightSql {
    /// The service over `engine`, issuing tokens valid for `token_ttl`.
    pub fn new(engine: Arc<Engine>, token_ttl: Duration) -> Self {
        let users = UserStore::new(Arc::clone(engine.lake()));
        Self {
            engine,
            users,
            token_ttl,
            logins: Mutex::default(),
            results: Mutex::default(),
            sql_info: sql_info(),
        }
    }

    /// The session of the request's bearer token.
    fn session<T>(&self, request: &Request<T>) -> Result<(String, Arc<Session>), Status> {
        let header = request.metadata().get("authorization").ok_or_else(|| {
            Status::unauthenticated(
                "no bearer token: authenticate with Handshake (Basic user:password) first",
            )
        })?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .ok_or_else(|| {
                Status::unauthenticated("expected an 'authorization: Bearer <token>' header")
            })?
            .trim()
            .to_string();
        let mut logins = self.logins.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        logins.retain(|_, l| l.expires > now);
        match logins.get(&token) {
            Some(login) => Ok((token, Arc::clone(&login.session))),
            None => Err(Status::unauthenticated(
                "invalid or expired token: authenticate again with Handshake",
            )),
        }
    }

    /// Runs one statement for a client.
    async fn run(
        &self,
        session: &Session,
        sql: &str,
    ) -> Result<crate::session::StatementResult, Status> {
        let mut parsed = session.parse(sql).map_err(status)?;
        if parsed.len() != 1 {
            return Err(Status::invalid_argument(format!(
                "expected one statement per request, got {}",
                parsed.len()
            )));
        }
        session
            .execute_statement(&parsed.remove(0))
            .await
            .map_err(status)
    }

    fn park(&self, token: &str, stream: SendableRecordBatchStream) -> String {
        let handle = random_token(16);
        let mut results = self.results.lock().unwrap_or_else(|e| e.into_inner());
        results.retain(|_, p| p.created.elapsed() < RESULT_TTL);
        results.insert(
            handle.clone(),
            Pending {
                token: token.to_string(),
                stream,
                created: Instant::now(),
            },
        );
        handle
    }

    /// A `FlightInfo` whose one endpoint's ticket is `ticket`.
    fn info(
        schema: &arrow::datatypes::Schema,
        ticket: Vec<u8>,
        descriptor: FlightDescriptor,
    ) -> Result<Response<FlightInfo>, Status> {
        let info = FlightInfo::new()
            .try_with_schema(schema)
            .map_err(|e| Status::internal(format!("cannot encode the result schema: {e}")))?
            .with_endpoint(FlightEndpoint::new().with_ticket(Ticket::new(ticket)))
            .with_descriptor(descriptor);
        Ok(Response::new(info))
    }

    /// Streams record batches as Flight data.
    fn stream(
        schema: arrow::datatypes::SchemaRef,
        batches: impl Stream<Item = Result<arrow::array::RecordBatch, FlightError>> + Send + 'static,
    ) -> Response<FlightStream<FlightData>> {
        let encoded = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(batches)
            .map_err(|e| match e {
                FlightError::Tonic(status) => *status,
                FlightError::ExternalError(e) => match e.downcast::<Error>() {
                    Ok(e) => status(*e),
                    Err(e) => Status::internal(e.to_string()),
                },
                other => Status::internal(other.to_string()),
            });
        Response::new(Box::pin(encoded))
    }

    fn one_batch(batch: arrow::array::RecordBatch) -> Response<FlightStream<FlightData>> {
        let schema = batch.schema();
        Self::stream(schema, futures::stream::iter([Ok(batch)]))
    }
}

/// What this server is, for `GetSqlInfo`.
fn sql_info() -> SqlInfoData {
    let mut b = SqlInfoDataBuilder::new();
    b.append(SqlInfo::FlightSqlServerName, "AutoLake");
    b.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    b.append(SqlInfo::FlightSqlServerArrowVersion, "1.5");
    b.append(SqlInfo::FlightSqlServerReadOnly, false);
    b.append(SqlInfo::FlightSqlServerSql, true);
    b.append(SqlInfo::FlightSqlServerSubstrait, false);
    b.append(SqlInfo::FlightSqlServerTransaction, 0i32);
    b.append(SqlInfo::FlightSqlServerCancel, false);
    b.append(SqlInfo::SqlDdlCatalog, false);
    b.append(SqlInfo::SqlDdlSchema, true);
    b.append(SqlInfo::SqlDdlTable, true);
    b.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
    b.append(SqlInfo::SqlQuotedIdentifierCase, 1i32); // case sensitive
    b.append(SqlInfo::SqlIdentifierCase, 2i32); // unquoted folded to lower case
    b.append(SqlInfo::SqlAllTablesAreSelectable, true);
    b.append(SqlInfo::SqlTransactionsSupported, false);
    b.build().expect("static SQL info is valid")
}

/// Maps an engine error to a gRPC status: the one place this is decided.
pub fn status(e: Error) -> Status {
    let message = e.to_string();
    match e {
        Error::Parse(_) | Error::Invalid(_) => Status::invalid_argument(message),
        Error::NotFound { .. } => Status::not_found(message),
        Error::AlreadyExists { .. } => Status::already_exists(message),
        Error::ReadOnly(_) | Error::PermissionDenied(_) => Status::permission_denied(message),
        Error::Conflict { .. } => Status::aborted(message),
        Error::DataFusion(ref df) => {
            use datafusion::error::DataFusionError as D;
            let root = df.find_root();
            if m_not_found(&message) && matches!(root, D::Plan(_) | D::SchemaError(..)) {
                return Status::not_found(message);
            }
            match root {
                D::SQL(..)
                | D::Plan(_)
                | D::SchemaError(..)
                | D::NotImplemented(_)
                | D::Execution(_) => Status::invalid_argument(message),
                D::ResourcesExhausted(_) => Status::resource_exhausted(message),
                _ => Status::internal(message),
            }
        }
        Error::Lake { .. } | Error::Storage(_) => Status::unavailable(message),
        _ => Status::internal(message),
    }
}

fn m_not_found(message: &str) -> bool {
    message.contains("not found") || message.contains("does not exist")
}

#[tonic::async_trait]
impl FlightSqlService for AutoLakeFlightSql {
    type FlightService = AutoLakeFlightSql;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<FlightStream<HandshakeResponse>>, Status> {
        let header = request
            .metadata()
            .get("authorization")
            .and_then(|h| h.to_str().ok())
            .ok_or_else(|| {
                Status::unauthenticated(
                    "Handshake needs an 'authorization: Basic <base64 user:password>' header",
                )
            })?;
        let encoded = header
            .strip_prefix("Basic ")
            .or_else(|| header.strip_prefix("basic "))
            .ok_or_else(|| Status::unauthenticated("Handshake accepts Basic credentials only"))?;
        let decoded = BASE64_STANDARD
            .decode(encoded.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| Status::unauthenticated("malformed Basic credentials"))?;
        let (name, password) = decoded
            .split_once(':')
            .ok_or_else(|| Status::unauthenticated("malformed Basic credentials"))?;
        let user = self
            .users
            .authenticate(name, password)
            .await
            .map_err(status)?
            .ok_or_else(|| Status::unauthenticated("invalid user name or password"))?;
        let token = random_token(32);
        let session = Arc::new(self.engine.session(user.principal(), Interface::FlightSql));
        self.logins
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                token.clone(),
                Login {
                    session,
                    expires: Instant::now() + self.token_ttl,
                },
            );
        let reply = HandshakeResponse {
            protocol_version: 0,
            payload: token.clone().into(),
        };
        let mut response: Response<FlightStream<HandshakeResponse>> =
            Response::new(Box::pin(futures::stream::iter([Ok(reply)])));
        let value = MetadataValue::try_from(format!("Bearer {token}"))
            .map_err(|e| Status::internal(e.to_string()))?;
        response.metadata_mut().insert("authorization", value);
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let (token, session) = self.session(&request)?;
        let result = self.run(&session, &query.query).await?;
        let schema = result.schema();
        let handle = self.park(&token, result.into_stream());
        let ticket = TicketStatementQuery {
            statement_handle: handle.into(),
        };
        Self::info(
            &schema,
            ticket.as_any().encode_to_vec(),
            request.into_inner(),
        )
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let (token, _) = self.session(&request)?;
        let handle = String::from_utf8_lossy(&ticket.statement_handle).to_string();
        let pending = {
            let mut results = self.results.lock().unwrap_or_else(|e| e.into_inner());
            match results.get(&handle) {
                Some(p) if p.token == token => results.remove(&handle),
                _ => None,
            }
        };
        let pending = pending.ok_or_else(|| {
            Status::not_found("no result for this ticket: it was fetched already or expired")
        })?;
        let schema = pending.stream.schema();
        let batches = pending
            .stream
            .map_err(|e| FlightError::ExternalError(Box::new(Error::from(e))));
        Ok(Self::stream(schema, batches))
    }

    async fn do_put_statement_update(
        &self,
        command: CommandStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let (_, session) = self.session(&request)?;
        let result = self.run(&session, &command.query).await?;
        let batches = result.collect().await.map_err(status)?;
        // DML reports one `count` row; other statements change no rows.
        let count = batches
            .iter()
            .find(|b| {
                b.num_rows() == 1 && b.num_columns() == 1 && b.schema().field(0).name() == "count"
            })
            .and_then(|b| {
                let c = b.column(0);
                (c.data_type() == &arrow::datatypes::DataType::UInt64 && !c.is_null(0))
                    .then(|| c.as_primitive::<UInt64Type>().value(0) as i64)
            })
            .unwrap_or(0);
        Ok(count)
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.session(&request)?;
        let schema = query.into_builder().schema();
        Self::info(
            &schema,
            query.as_any().encode_to_vec(),
            request.into_inner(),
        )
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let (_, session) = self.session(&request)?;
        let mut builder = query.into_builder();
        for catalog in visible_catalogs(&session) {
            builder.append(catalog);
        }
        let batch = builder
            .build()
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Self::one_batch(batch))
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.session(&request)?;
        let schema = query.clone().into_builder().schema();
        Self::info(
            &schema,
            query.as_any().encode_to_vec(),
            request.into_inner(),
        )
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let (_, session) = self.session(&request)?;
        session.refresh_catalog().await.map_err(status)?;
        let mut builder = query.into_builder();
        for catalog_name in visible_catalogs(&session) {
            if let Some(catalog) = session.context().catalog(&catalog_name) {
                for schema in catalog.schema_names() {
                    builder.append(&catalog_name, schema);
                }
            }
        }
        let batch = builder
            .build()
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Self::one_batch(batch))
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.session(&request)?;
        let schema = query.clone().into_builder().schema();
        Self::info(
            &schema,
            query.as_any().encode_to_vec(),
            request.into_inner(),
        )
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let (_, session) = self.session(&request)?;
        session.refresh_catalog().await.map_err(status)?;
        let wanted_catalog = query.catalog.clone();
        let mut builder = query.into_builder();
        for catalog_name in visible_catalogs(&session) {
            if wanted_catalog.as_ref().is_some_and(|c| *c != catalog_name) {
                continue;
            }
            let Some(catalog) = session.context().catalog(&catalog_name) else {
                continue;
            };
            for schema_name in catalog.schema_names() {
                let Some(schema) = catalog.schema(&schema_name) else {
                    continue;
                };
                for table_name in schema.table_names() {
                    // A table dropped meanwhile is skipped.
                    let Ok(Some(table)) = schema.table(&table_name).await else {
                        continue;
                    };
                    let kind = match table.table_type() {
                        TableType::Base => "TABLE",
                        TableType::View => "VIEW",
                        TableType::Temporary => "LOCAL TEMPORARY",
                    };
                    builder
                        .append(
                            &catalog_name,
                            &schema_name,
                            &table_name,
                            kind,
                            &table.schema(),
                        )
                        .map_err(|e| Status::internal(e.to_string()))?;
                }
            }
        }
        let batch = builder
            .build()
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Self::one_batch(batch))
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.session(&request)?;
        let schema = query.into_builder().schema();
        Self::info(
            &schema,
            query.as_any().encode_to_vec(),
            request.into_inner(),
        )
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.session(&request)?;
        let mut builder = query.into_builder();
        for kind in ["LOCAL TEMPORARY", "TABLE", "VIEW"] {
            builder.append(kind);
        }
        let batch = builder
            .build()
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Self::one_batch(batch))
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.session(&request)?;
        let schema = query.clone().into_builder(&self.sql_info).schema();
        Self::info(
            &schema,
            query.as_any().encode_to_vec(),
            request.into_inner(),
        )
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.session(&request)?;
        let batch = query
            .into_builder(&self.sql_info)
            .build()
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Self::one_batch(batch))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

/// Catalogs a client may list: the lake and any the session added, not
/// AutoLake's internal ones.
fn visible_catalogs(session: &Session) -> Vec<String> {
    let mut names: Vec<String> = session
        .context()
        .catalog_names()
        .into_iter()
        .filter(|c| !c.starts_with("__"))
        .collect();
    names.sort();
    names
}
