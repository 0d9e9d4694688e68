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
//!   query. Results nobody fetches are dropped after a while. The
//!   `DoGet` of a statement's result is answered below the generated
//!   service, by [`super::doget`], which sends the batches' own buffers
//!   instead of copying them into each message.
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

use arrow::array::{Array, ArrayRef, AsArray, Int32Array, RecordBatch, StringArray};
use arrow::datatypes::UInt64Type;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::metadata::{
    SqlInfoData, SqlInfoDataBuilder, XdbcTypeInfo, XdbcTypeInfoData, XdbcTypeInfoDataBuilder,
};
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionCancelQueryRequest, ActionCancelQueryResult, ActionClosePreparedStatementRequest,
    ActionCreatePreparedStatementRequest, ActionCreatePreparedStatementResult, CommandGetCatalogs,
    CommandGetDbSchemas, CommandGetPrimaryKeys, CommandGetSqlInfo, CommandGetTableTypes,
    CommandGetTables, CommandGetXdbcTypeInfo, CommandPreparedStatementQuery,
    CommandPreparedStatementUpdate, CommandStatementIngest, CommandStatementQuery,
    CommandStatementUpdate, DoPutPreparedStatementResult, Nullable, ProstMessageExt, Searchable,
    SqlInfo, TableExistsOption, TableNotExistOption, TicketStatementQuery, XdbcDataType,
};
use arrow_flight::{
    Action, CancelFlightInfoRequest, CancelFlightInfoResult, CancelStatus, FlightData,
    FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse, Ticket,
};
use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use datafusion::common::Constraint;
use datafusion::datasource::TableType;
use datafusion::execution::SendableRecordBatchStream;
use futures::{Stream, TryStreamExt};
use prost::Message;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status, Streaming};

use super::status::status;
use super::{doget, params};
use crate::error::Error;
use crate::governance::accounts::{UserStore, random_token};
use crate::lake::{DEFAULT_SCHEMA, LAKE_CATALOG};
use crate::principal::Interface;
use crate::session::{Engine, IfExists, IfMissing, Ingest, Session};

/// Base64 for Basic credentials, with or without padding (Go clients,
/// ADBC's among them, leave it out).
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// How long a result waits for its `DoGet`.
const RESULT_TTL: Duration = Duration::from_secs(600);

type FlightStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// A logged-in client.
struct Login {
    session: Arc<Session>,
    expires: Instant,
}

/// The live bearer tokens, shared by the service and the [`RequireToken`]
/// gate in front of it.
#[derive(Default)]
pub(crate) struct Logins(Mutex<HashMap<String, Login>>);

impl Logins {
    /// The token and session named by an `authorization: Bearer …`
    /// header; `Unauthenticated` when it is missing, malformed, unknown
    /// or expired.
    fn session(&self, header: Option<&[u8]>) -> Result<(String, Arc<Session>), Status> {
        let header = header.ok_or_else(|| {
            Status::unauthenticated(
                "no bearer token: authenticate with Handshake (Basic user:password) first",
            )
        })?;
        let token = std::str::from_utf8(header)
            .ok()
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .ok_or_else(|| {
                Status::unauthenticated("expected an 'authorization: Bearer <token>' header")
            })?
            .trim();
        let mut logins = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        logins.retain(|_, l| l.expires > now);
        match logins.get(token) {
            Some(login) => Ok((token.to_string(), Arc::clone(&login.session))),
            None => Err(Status::unauthenticated(
                "invalid or expired token: authenticate again with Handshake",
            )),
        }
    }

    /// Who a live bearer token belongs to (the deck's API takes them too).
    pub(crate) fn principal(&self, token: &str) -> Option<crate::principal::Principal> {
        let logins = self.0.lock().unwrap_or_else(|e| e.into_inner());
        logins
            .get(token)
            .filter(|l| l.expires > Instant::now())
            .map(|l| l.session.principal().clone())
    }

    fn insert(&self, token: String, login: Login) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(token, login);
    }
}

/// The Flight service behind a gate that refuses every call but
/// `Handshake` without a live bearer token — including the calls this
/// server does not implement (`ListFlights`, `GetSchema`, `PollFlightInfo`,
/// `DoExchange`, …), which would otherwise answer `Unimplemented` to
/// anyone and so reveal what is there.
#[derive(Clone)]
pub struct RequireToken<S> {
    inner: S,
    logins: Arc<Logins>,
    /// The service itself, for `DoGet` of results ([`super::doget`]).
    service: Arc<AutoLakeFlightSql>,
    /// The engine's runtime, where every call runs (see [`super`]).
    queries: tokio::runtime::Handle,
}

impl<S> std::fmt::Debug for RequireToken<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequireToken").finish_non_exhaustive()
    }
}

/// The one call that needs no token.
const HANDSHAKE_PATH: &str = "/arrow.flight.protocol.FlightService/Handshake";

/// The largest `DoGet` request read (a ticket is a few dozen bytes).
const MAX_TICKET_REQUEST: usize = 1 << 20;

type HttpRequest = tonic::codegen::http::Request<tonic::body::Body>;
type HttpResponse = tonic::codegen::http::Response<tonic::body::Body>;

impl<S> tonic::codegen::Service<HttpRequest> for RequireToken<S>
where
    S: tonic::codegen::Service<
            HttpRequest,
            Response = HttpResponse,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = HttpResponse;
    type Error = std::convert::Infallible;
    type Future = tonic::codegen::BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: HttpRequest) -> Self::Future {
        let path = request.uri().path();
        if path != HANDSHAKE_PATH {
            let header = request.headers().get("authorization").map(|h| h.as_bytes());
            if let Err(refused) = self.logins.session(header) {
                return Box::pin(async move { Ok(refused.into_http()) });
            }
        }
        if path != doget::DO_GET_PATH {
            let call = self.inner.call(request);
            return self.on_queries(call);
        }
        // The ticket decides which path a `DoGet` takes; the service made
        // ready by `poll_ready` is the one called, a clone stays here.
        let service = Arc::clone(&self.service);
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        self.on_queries(async move {
            let (parts, body) = request.into_parts();
            let body = match doget::collect(body, MAX_TICKET_REQUEST).await {
                Ok(body) => body,
                Err(refused) => return Ok(refused.into_http()),
            };
            if let Some(response) = service.do_get_result(&parts.headers, &body) {
                return Ok(response);
            }
            let body = tonic::body::Body::new(doget::Collected(Some(body)));
            inner
                .call(tonic::codegen::http::Request::from_parts(parts, body))
                .await
        })
    }
}

impl<S> RequireToken<S> {
    /// Runs a call on the engine's runtime: planning, execution and the
    /// producing side of results stay off the threads that serve the
    /// network.
    fn on_queries<F>(
        &self,
        call: F,
    ) -> tonic::codegen::BoxFuture<HttpResponse, std::convert::Infallible>
    where
        F: std::future::Future<Output = Result<HttpResponse, std::convert::Infallible>>
            + Send
            + 'static,
    {
        let running = self.queries.spawn(call);
        // A call the client gives up on is dropped by hyper; so is its
        // work here, as it would be had it run in place.
        let abort = AbortOnDrop(running.abort_handle());
        Box::pin(async move {
            let _abort = abort;
            match running.await {
                Ok(response) => response,
                Err(e) => Ok(Status::internal(if e.is_panic() {
                    "the call failed unexpectedly"
                } else {
                    "the call was cancelled"
                })
                .into_http()),
            }
        })
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<S: tonic::server::NamedService> tonic::server::NamedService for RequireToken<S> {
    const NAME: &'static str = S::NAME;
}

/// A statement's result waiting for its `DoGet`.
struct Pending {
    token: String,
    stream: SendableRecordBatchStream,
    created: Instant,
}

/// A prepared statement: its text and the parameters bound last.
struct Prepared {
    token: String,
    sql: String,
    params: Option<RecordBatch>,
}

/// AutoLake's Flight SQL service.
pub struct AutoLakeFlightSql {
    engine: Arc<Engine>,
    users: UserStore,
    token_ttl: Duration,
    logins: Arc<Logins>,
    results: Mutex<HashMap<String, Pending>>,
    prepared: Mutex<HashMap<String, Prepared>>,
    sql_info: SqlInfoData,
    xdbc_info: XdbcTypeInfoData,
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
            logins: Arc::default(),
            results: Mutex::default(),
            prepared: Mutex::default(),
            sql_info: sql_info(),
            xdbc_info: xdbc_info(),
        }
    }

    /// The live bearer tokens, shared with the deck's API.
    pub(crate) fn logins(&self) -> Arc<Logins> {
        Arc::clone(&self.logins)
    }

    /// This service as a gRPC server behind the [`RequireToken`] gate.
    /// Its calls run on the runtime this is called on (the engine's),
    /// whichever runtime serves the connections.
    pub fn into_server(
        self,
    ) -> RequireToken<arrow_flight::flight_service_server::FlightServiceServer<Self>> {
        let logins = Arc::clone(&self.logins);
        let service = Arc::new(self);
        let inner = arrow_flight::flight_service_server::FlightServiceServer::from_arc(Arc::clone(
            &service,
        ))
        .max_decoding_message_size(64 << 20);
        RequireToken {
            inner,
            logins,
            service,
            queries: tokio::runtime::Handle::current(),
        }
    }

    /// A prepared statement of this client's, by handle.
    fn prepared(
        &self,
        token: &str,
        handle: &[u8],
    ) -> Result<(String, Option<RecordBatch>), Status> {
        let handle = String::from_utf8_lossy(handle);
        let prepared = self.prepared.lock().unwrap_or_else(|e| e.into_inner());
        match prepared.get(handle.as_ref()) {
            Some(p) if p.token == token => Ok((p.sql.clone(), p.params.clone())),
            _ => Err(Status::not_found(
                "no such prepared statement: it was closed or belongs to another login",
            )),
        }
    }

    /// The statement with row `row` of `params` bound, or as is.
    fn bound(sql: &str, params: Option<&RecordBatch>, row: usize) -> Result<String, Status> {
        let needed = params::count_placeholders(sql).map_err(status)?;
        match params {
            Some(p) if p.num_rows() > 0 => params::bind(sql, p, row).map_err(status),
            _ if needed > 0 => Err(Status::invalid_argument(format!(
                "the statement has {needed} parameter(s) and none are bound"
            ))),
            _ => Ok(sql.to_string()),
        }
    }

    /// Record batches sent with a `DoPut`, decoded.
    async fn put_batches(
        request: Request<PeekableFlightDataStream>,
    ) -> Result<Vec<RecordBatch>, Status> {
        // A message with only the command (no IPC header) carries no data.
        let stream = request
            .into_inner()
            .try_filter(|data| futures::future::ready(!data.data_header.is_empty()))
            .map_err(FlightError::from);
        arrow_flight::decode::FlightRecordBatchStream::new_from_flight_data(stream)
            .try_collect()
            .await
            .map_err(|e| Status::invalid_argument(format!("cannot read the uploaded batches: {e}")))
    }

    /// Runs a statement once per row of `params` (once without), summing
    /// the rows each changed.
    async fn update(
        &self,
        session: &Session,
        sql: &str,
        params: Option<&RecordBatch>,
    ) -> Result<i64, Status> {
        let rows = params.map_or(1, |p| p.num_rows().max(1));
        let mut total = 0;
        for row in 0..rows {
            let statement = Self::bound(sql, params, row)?;
            let result = self.run(session, &statement).await?;
            total += changed_rows(result.collect().await.map_err(status)?);
        }
        Ok(total)
    }

    /// The session of the request's bearer token.
    fn session<T>(&self, request: &Request<T>) -> Result<(String, Arc<Session>), Status> {
        self.logins.session(
            request
                .metadata()
                .get("authorization")
                .map(|h| h.as_bytes()),
        )
    }

    /// Runs one statement for a client.
    async fn run(
        &self,
        session: &Session,
        sql: &str,
    ) -> Result<crate::session::StatementResult, Status> {
        let parsed = session.parse_one(sql).map_err(status)?;
        session.execute_statement(&parsed).await.map_err(status)
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

    /// The parked result a ticket names, taken (a result is fetched once).
    fn take_result(
        &self,
        token: &str,
        ticket: &TicketStatementQuery,
    ) -> Result<SendableRecordBatchStream, Status> {
        let handle = String::from_utf8_lossy(&ticket.statement_handle);
        let mut results = self.results.lock().unwrap_or_else(|e| e.into_inner());
        match results.get(handle.as_ref()) {
            Some(p) if p.token == token => {}
            _ => {
                return Err(Status::not_found(
                    "no result for this ticket: it was fetched already or expired",
                ));
            }
        }
        results
            .remove(handle.as_ref())
            .map(|p| p.stream)
            .ok_or_else(|| Status::internal("the result went away"))
    }

    /// `DoGet` of a statement's result, answered by [`doget::BatchBody`]
    /// without copying the data; `None` leaves the call to the generated
    /// service (other tickets, schemas `doget` does not send, requests it
    /// cannot read).
    fn do_get_result(
        &self,
        headers: &tonic::codegen::http::HeaderMap,
        body: &[u8],
    ) -> Option<HttpResponse> {
        let ticket = Ticket::decode(doget::request_message(body)?).ok()?;
        let any = arrow_flight::sql::Any::decode(ticket.ticket).ok()?;
        let statement = any.unpack::<TicketStatementQuery>().ok()??;
        let header = headers.get("authorization").map(|h| h.as_bytes());
        let token = match self.logins.session(header) {
            Ok((token, _)) => token,
            Err(refused) => return Some(refused.into_http()),
        };
        {
            let handle = String::from_utf8_lossy(&statement.statement_handle);
            let results = self.results.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(p) = results.get(handle.as_ref())
                && !doget::supported(&p.stream.schema())
            {
                return None;
            }
        }
        let body = self
            .take_result(&token, &statement)
            .and_then(doget::BatchBody::new);
        Some(match body {
            Ok(body) => {
                let mut response = HttpResponse::new(tonic::body::Body::new(body));
                response.headers_mut().insert(
                    tonic::codegen::http::header::CONTENT_TYPE,
                    tonic::codegen::http::HeaderValue::from_static("application/grpc"),
                );
                response
            }
            Err(refused) => refused.into_http(),
        })
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

    /// The `FlightInfo` of a metadata command: checks the token, and the
    /// ticket is the command itself.
    fn metadata_info(
        &self,
        command: &impl ProstMessageExt,
        schema: &arrow::datatypes::Schema,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.session(&request)?;
        Self::info(
            schema,
            command.as_any().encode_to_vec(),
            request.into_inner(),
        )
    }

    /// Drops the parked results named by `info`'s tickets, which stops
    /// their queries; whether any was still running.
    fn cancel(&self, token: &str, info: &FlightInfo) -> bool {
        let mut results = self.results.lock().unwrap_or_else(|e| e.into_inner());
        let mut cancelled = false;
        for endpoint in &info.endpoint {
            let Some(ticket) = &endpoint.ticket else {
                continue;
            };
            let Ok(any) = arrow_flight::sql::Any::decode(ticket.ticket.clone()) else {
                continue;
            };
            let Ok(Some(t)) = any.unpack::<TicketStatementQuery>() else {
                continue;
            };
            let handle = String::from_utf8_lossy(&t.statement_handle).to_string();
            if results.get(&handle).is_some_and(|p| p.token == token) {
                results.remove(&handle);
                cancelled = true;
            }
        }
        cancelled
    }

    /// A metadata result built by one of arrow-flight's builders.
    fn built(
        batch: Result<RecordBatch, impl std::fmt::Display>,
    ) -> Result<Response<FlightStream<FlightData>>, Status> {
        batch
            .map(Self::one_batch)
            .map_err(|e| Status::internal(e.to_string()))
    }

    fn one_batch(batch: arrow::array::RecordBatch) -> Response<FlightStream<FlightData>> {
        let schema = batch.schema();
        Self::stream(schema, futures::stream::iter([Ok(batch)]))
    }
}

/// Rows changed by a statement: DML reports one `count` row; other
/// statements change none.
fn changed_rows(batches: Vec<RecordBatch>) -> i64 {
    batches
        .iter()
        .find(|b| {
            b.num_rows() == 1 && b.num_columns() == 1 && b.schema().field(0).name() == "count"
        })
        .and_then(|b| {
            let c = b.column(0);
            (c.data_type() == &arrow::datatypes::DataType::UInt64 && !c.is_null(0))
                .then(|| c.as_primitive::<UInt64Type>().value(0) as i64)
        })
        .unwrap_or(0)
}

/// An Arrow schema as the IPC bytes Flight SQL messages carry.
fn schema_bytes(schema: &arrow::datatypes::Schema) -> Result<prost::bytes::Bytes, Status> {
    let message: arrow_flight::IpcMessage =
        arrow_flight::SchemaAsIpc::new(schema, &arrow::ipc::writer::IpcWriteOptions::default())
            .try_into()
            .map_err(|e: arrow::error::ArrowError| Status::internal(e.to_string()))?;
    Ok(message.0)
}

/// The SQL types AutoLake speaks, for `GetXdbcTypeInfo`.
fn xdbc_info() -> XdbcTypeInfoData {
    let mut b = XdbcTypeInfoDataBuilder::new();
    let types: [(&str, XdbcDataType, Option<i32>, bool); 10] = [
        ("BOOLEAN", XdbcDataType::XdbcBit, Some(1), false),
        ("SMALLINT", XdbcDataType::XdbcSmallint, Some(16), false),
        ("INTEGER", XdbcDataType::XdbcInteger, Some(32), false),
        ("BIGINT", XdbcDataType::XdbcBigint, Some(64), false),
        ("REAL", XdbcDataType::XdbcFloat, Some(24), false),
        ("DOUBLE", XdbcDataType::XdbcDouble, Some(53), false),
        ("DECIMAL", XdbcDataType::XdbcDecimal, Some(38), false),
        ("VARCHAR", XdbcDataType::XdbcVarchar, None, true),
        ("DATE", XdbcDataType::XdbcDate, None, false),
        ("TIMESTAMP", XdbcDataType::XdbcTimestamp, None, false),
    ];
    for (name, data_type, size, case_sensitive) in types {
        let quoted = matches!(
            data_type,
            XdbcDataType::XdbcVarchar | XdbcDataType::XdbcDate | XdbcDataType::XdbcTimestamp
        );
        b.append(XdbcTypeInfo {
            type_name: name.into(),
            data_type,
            column_size: size,
            literal_prefix: quoted.then(|| "'".into()),
            literal_suffix: quoted.then(|| "'".into()),
            create_params: (name == "DECIMAL").then(|| vec!["precision".into(), "scale".into()]),
            nullable: Nullable::NullabilityNullable,
            case_sensitive,
            searchable: Searchable::Full,
            unsigned_attribute: size.map(|_| false),
            fixed_prec_scale: false,
            auto_increment: Some(false),
            local_type_name: Some(name.into()),
            minimum_scale: None,
            maximum_scale: (name == "DECIMAL").then_some(38),
            sql_data_type: data_type,
            datetime_subcode: None,
            num_prec_radix: size.map(|_| 2),
            interval_precision: None,
        });
    }
    b.build().expect("static type info is valid")
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
    b.append(SqlInfo::FlightSqlServerCancel, true);
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
        let decoded = BASE64
            .decode(encoded.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| Status::unauthenticated("malformed Basic credentials"))?;
        let (name, password) = decoded
            .split_once(':')
            .ok_or_else(|| Status::unauthenticated("malformed Basic credentials"))?;
        // The funnel's login entry audits the attempt, refused ones too.
        let session = self
            .engine
            .login(&self.users, name, password, Interface::FlightSql)
            .await
            .map_err(status)?
            .ok_or_else(|| Status::unauthenticated("invalid user name or password"))?;
        let token = random_token(32);
        let session = Arc::new(session);
        self.logins.insert(
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
        let stream = self.take_result(&token, &ticket)?;
        let schema = stream.schema();
        let batches = stream.map_err(|e| FlightError::ExternalError(Box::new(Error::from(e))));
        Ok(Self::stream(schema, batches))
    }

    async fn do_put_statement_update(
        &self,
        command: CommandStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let (_, session) = self.session(&request)?;
        self.update(&session, &command.query, None).await
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.metadata_info(&query, &query.into_builder().schema(), request)
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
        Self::built(builder.build())
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.metadata_info(&query, &query.clone().into_builder().schema(), request)
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
        Self::built(builder.build())
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.metadata_info(&query, &query.clone().into_builder().schema(), request)
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
                    if !session.may_read(&catalog_name, &schema_name, &table_name) {
                        continue;
                    }
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
        Self::built(builder.build())
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.metadata_info(&query, &query.into_builder().schema(), request)
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
        Self::built(builder.build())
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.metadata_info(
            &query,
            &query.clone().into_builder(&self.sql_info).schema(),
            request,
        )
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.session(&request)?;
        Self::built(query.into_builder(&self.sql_info).build())
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let (token, session) = self.session(&request)?;
        let parsed = session.parse_one(&query.query).map_err(status)?;
        let count = params::count_placeholders(&query.query).map_err(status)?;
        // The result schema, when the statement is a query DataFusion can
        // plan with its parameters unknown.
        let dataset_schema = match session.plan_query(&parsed).await {
            Some(schema) => schema_bytes(&schema)?,
            None => Default::default(),
        };
        let parameter_schema = arrow::datatypes::Schema::new(
            (0..count)
                .map(|i| {
                    arrow::datatypes::Field::new(
                        format!("${}", i + 1),
                        arrow::datatypes::DataType::Null,
                        true,
                    )
                })
                .collect::<Vec<_>>(),
        );
        let handle = random_token(16);
        self.prepared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                handle.clone(),
                Prepared {
                    token,
                    sql: query.query,
                    params: None,
                },
            );
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle.into(),
            dataset_schema,
            parameter_schema: schema_bytes(&parameter_schema)?,
        })
    }

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<(), Status> {
        let (token, _) = self.session(&request)?;
        self.prepared(&token, &query.prepared_statement_handle)?;
        let handle = String::from_utf8_lossy(&query.prepared_statement_handle).to_string();
        self.prepared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&handle);
        Ok(())
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        let (token, _) = self.session(&request)?;
        let (sql, _) = self.prepared(&token, &query.prepared_statement_handle)?;
        let batches = Self::put_batches(request).await?;
        let params = match batches.as_slice() {
            [] => None,
            [one] => Some(one.clone()),
            many => Some(
                arrow::compute::concat_batches(&many[0].schema(), many)
                    .map_err(|e| Status::invalid_argument(e.to_string()))?,
            ),
        };
        if let Some(p) = &params {
            // Fail at binding time, not at execution.
            Self::bound(&sql, Some(p), 0)?;
        }
        let handle = String::from_utf8_lossy(&query.prepared_statement_handle).to_string();
        if let Some(p) = self
            .prepared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&handle)
        {
            p.params = params;
        }
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: Some(query.prepared_statement_handle),
        })
    }

    async fn get_flight_info_prepared_statement(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let (token, session) = self.session(&request)?;
        let (sql, params) = self.prepared(&token, &cmd.prepared_statement_handle)?;
        if params.as_ref().is_some_and(|p| p.num_rows() > 1) {
            return Err(Status::invalid_argument(
                "a prepared query runs with one row of parameters; bind one row",
            ));
        }
        let statement = Self::bound(&sql, params.as_ref(), 0)?;
        let result = self.run(&session, &statement).await?;
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

    async fn do_put_prepared_statement_update(
        &self,
        query: CommandPreparedStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let (token, session) = self.session(&request)?;
        let (sql, stored) = self.prepared(&token, &query.prepared_statement_handle)?;
        let sent = Self::put_batches(request).await?;
        if sent.is_empty() {
            return self.update(&session, &sql, stored.as_ref()).await;
        }
        let mut total = 0;
        for batch in &sent {
            total += self.update(&session, &sql, Some(batch)).await?;
        }
        Ok(total)
    }

    async fn do_put_statement_ingest(
        &self,
        command: CommandStatementIngest,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let (_, session) = self.session(&request)?;
        if command.temporary {
            return Err(Status::invalid_argument(
                "temporary tables are not supported: ingest into a lake table",
            ));
        }
        if command
            .catalog
            .as_deref()
            .is_some_and(|c| c != crate::lake::LAKE_CATALOG)
        {
            return Err(Status::invalid_argument(format!(
                "ingest goes into catalog '{}'",
                crate::lake::LAKE_CATALOG
            )));
        }
        let options = command.table_definition_options.unwrap_or_default();
        let table = crate::lake::TableName::new(
            command
                .schema
                .unwrap_or_else(|| crate::lake::DEFAULT_SCHEMA.to_string()),
            command.table,
        );
        let if_exists = match options.if_exists() {
            TableExistsOption::Unspecified => None,
            TableExistsOption::Fail => Some(IfExists::Fail),
            TableExistsOption::Append => Some(IfExists::Append),
            TableExistsOption::Replace => Some(IfExists::Replace),
        };
        let if_missing = match options.if_not_exist() {
            TableNotExistOption::Unspecified => None,
            TableNotExistOption::Create => Some(IfMissing::Create),
            TableNotExistOption::Fail => Some(IfMissing::Fail),
        };
        let batches = Self::put_batches(request).await?;
        let rows = session
            .ingest(Ingest {
                table,
                batches,
                if_exists,
                if_missing,
            })
            .await
            .map_err(status)?;
        Ok(rows as i64)
    }

    async fn get_flight_info_primary_keys(
        &self,
        query: CommandGetPrimaryKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.session(&request)?;
        Self::info(
            &primary_keys_schema(),
            query.as_any().encode_to_vec(),
            request.into_inner(),
        )
    }

    async fn do_get_primary_keys(
        &self,
        query: CommandGetPrimaryKeys,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let (_, session) = self.session(&request)?;
        session.refresh_catalog().await.map_err(status)?;
        // A table's declared (informational) primary key, in key order.
        let catalog_name = query.catalog.unwrap_or_else(|| LAKE_CATALOG.to_string());
        let schema_name = query
            .db_schema
            .unwrap_or_else(|| DEFAULT_SCHEMA.to_string());
        let mut columns: Vec<String> = Vec::new();
        let table = match session.context().catalog(&catalog_name) {
            Some(catalog) if session.may_read(&catalog_name, &schema_name, &query.table) => {
                match catalog.schema(&schema_name) {
                    Some(schema) => schema.table(&query.table).await.ok().flatten(),
                    None => None,
                }
            }
            _ => None,
        };
        if let Some(table) = table {
            let fields = table.schema();
            for constraint in table.constraints().map(|c| c.iter()).into_iter().flatten() {
                if let Constraint::PrimaryKey(indices) = constraint {
                    columns.extend(indices.iter().map(|&i| fields.field(i).name().clone()));
                }
            }
        }
        let n = columns.len();
        let repeat = |v: &str| Arc::new(StringArray::from(vec![v; n])) as ArrayRef;
        let batch = RecordBatch::try_new(
            Arc::new(primary_keys_schema()),
            vec![
                repeat(&catalog_name),
                repeat(&schema_name),
                repeat(&query.table),
                Arc::new(StringArray::from(columns)),
                repeat("PRIMARY"),
                Arc::new(Int32Array::from_iter_values(1..=n as i32)),
            ],
        )
        .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Self::one_batch(batch))
    }

    async fn get_flight_info_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.metadata_info(
            &query,
            &query.into_builder(&self.xdbc_info).schema(),
            request,
        )
    }

    async fn do_get_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.session(&request)?;
        Self::built(query.into_builder(&self.xdbc_info).build())
    }

    async fn do_action_cancel_query(
        &self,
        query: ActionCancelQueryRequest,
        request: Request<Action>,
    ) -> Result<ActionCancelQueryResult, Status> {
        let (token, _) = self.session(&request)?;
        let info = FlightInfo::decode(query.info)
            .map_err(|e| Status::invalid_argument(format!("cannot read the FlightInfo: {e}")))?;
        let cancelled = self.cancel(&token, &info);
        Ok(ActionCancelQueryResult {
            // CancelResult: 1 cancelled, 3 not cancellable.
            result: if cancelled { 1 } else { 3 },
        })
    }

    async fn do_action_fallback(
        &self,
        request: Request<Action>,
    ) -> Result<Response<<Self as FlightService>::DoActionStream>, Status> {
        let (token, _) = self.session(&request)?;
        let action = request.into_inner();
        if action.r#type != "CancelFlightInfo" {
            return Err(Status::unimplemented(format!(
                "action {} is not supported",
                action.r#type
            )));
        }
        let cancel = CancelFlightInfoRequest::decode(action.body).map_err(|e| {
            Status::invalid_argument(format!("cannot read CancelFlightInfoRequest: {e}"))
        })?;
        let info = cancel.info.ok_or_else(|| {
            Status::invalid_argument("CancelFlightInfoRequest without a FlightInfo")
        })?;
        let status = if self.cancel(&token, &info) {
            CancelStatus::Cancelled
        } else {
            CancelStatus::NotCancellable
        };
        let result = CancelFlightInfoResult {
            status: status as i32,
        };
        let body = arrow_flight::Result {
            body: result.encode_to_vec().into(),
        };
        Ok(Response::new(Box::pin(futures::stream::iter([Ok(body)]))))
    }

    async fn do_get_fallback(
        &self,
        request: Request<Ticket>,
        message: arrow_flight::sql::Any,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.session(&request)?;
        Err(Status::unimplemented(format!(
            "DoGet of {} is not supported",
            message.type_url
        )))
    }

    async fn get_flight_info_fallback(
        &self,
        command: arrow_flight::sql::Command,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.session(&request)?;
        Err(Status::unimplemented(format!(
            "GetFlightInfo of {} is not supported",
            command.type_url()
        )))
    }

    async fn do_put_fallback(
        &self,
        request: Request<PeekableFlightDataStream>,
        message: arrow_flight::sql::Any,
    ) -> Result<Response<<Self as FlightService>::DoPutStream>, Status> {
        self.session(&request)?;
        Err(Status::unimplemented(format!(
            "DoPut of {} is not supported",
            message.type_url
        )))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

/// Columns of a `GetPrimaryKeys` result.
fn primary_keys_schema() -> arrow::datatypes::Schema {
    use arrow::datatypes::{DataType, Field};
    arrow::datatypes::Schema::new(vec![
        Field::new("catalog_name", DataType::Utf8, true),
        Field::new("db_schema_name", DataType::Utf8, true),
        Field::new("table_name", DataType::Utf8, false),
        Field::new("column_name", DataType::Utf8, false),
        Field::new("key_name", DataType::Utf8, true),
        Field::new("key_sequence", DataType::Int32, false),
    ])
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
