//! `SHOW CLUSTER`: the executors the session's scheduler knows, from the
//! scheduler's REST API (`GET /api/executors`, on its gRPC port).

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{ClusterAddress, session_cluster, unreachable_error};
use crate::context::{StatementContext, StatementResult};
use crate::error::{Error, Result};

/// One executor, as the scheduler lists it.
#[derive(Debug, Deserialize)]
struct Executor {
    id: String,
    host: String,
    port: u16,
    /// The last heartbeat, in milliseconds since the epoch.
    last_seen: Option<u64>,
    specification: Specification,
}

#[derive(Debug, Deserialize)]
struct Specification {
    vcores: u64,
}

/// The executors of the session's cluster.
pub(crate) async fn show(cx: &StatementContext) -> Result<StatementResult> {
    let config = cx.ctx.copied_config();
    let address = session_cluster(&config)
        .map_err(|e| Error::invalid(e.to_string()))?
        .ok_or_else(|| {
            Error::invalid(
                "this session runs its queries here, on no cluster: start it with --cluster \
                 df://HOST:PORT (or AUTOLAKE_CLUSTER), or SET autolake.cluster = 'df://HOST:PORT'",
            )
        })?;
    let mut executors = executors(&address).await?;
    executors.sort_by(|a, b| a.id.cmp(&b.id));
    let now = chrono::Utc::now().timestamp_millis();
    let timeout = super::processes::EXECUTOR_TIMEOUT_SECONDS as i64 * 1000;
    let state = |e: &Executor| match e.last_seen {
        None => "registering",
        Some(at) if now - (at as i64) <= timeout => "alive",
        Some(_) => "unresponsive",
    };
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("address", DataType::Utf8, false),
        Field::new("slots", DataType::Int64, false),
        Field::new("state", DataType::Utf8, false),
        Field::new(
            "last_seen",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            true,
        ),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            executors.iter().map(|e| e.id.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            executors.iter().map(|e| format!("{}:{}", e.host, e.port)),
        )),
        Arc::new(Int64Array::from_iter_values(
            executors.iter().map(|e| e.specification.vcores as i64),
        )),
        Arc::new(StringArray::from_iter_values(executors.iter().map(state))),
        Arc::new(
            TimestampMillisecondArray::from(
                executors
                    .iter()
                    .map(|e| e.last_seen.map(|t| t as i64))
                    .collect::<Vec<_>>(),
            )
            .with_timezone("UTC"),
        ),
    ];
    let batch = RecordBatch::try_new(Arc::clone(&schema), columns)?;
    Ok(StatementResult::batches(
        "SHOW CLUSTER",
        schema,
        vec![batch],
    ))
}

/// `GET /api/executors` from the scheduler.
async fn executors(address: &ClusterAddress) -> Result<Vec<Executor>> {
    let exchange = async {
        let mut socket =
            tokio::net::TcpStream::connect((address.host.as_str(), address.port)).await?;
        let request = format!(
            "GET /api/executors HTTP/1.1\r\nhost: {}:{}\r\naccept: application/json\r\n\
             connection: close\r\n\r\n",
            address.host, address.port
        );
        socket.write_all(request.as_bytes()).await?;
        let mut reply = Vec::new();
        socket.read_to_end(&mut reply).await?;
        Ok::<_, std::io::Error>(reply)
    };
    let reply = match tokio::time::timeout(Duration::from_secs(10), exchange).await {
        Ok(Ok(reply)) => reply,
        Ok(Err(e)) => return Err(unreachable_error(address, &e.to_string())),
        Err(_) => return Err(unreachable_error(address, "no answer in 10 s")),
    };
    let text = String::from_utf8_lossy(&reply);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).unwrap_or("");
    if status != "200" {
        return Err(Error::Unavailable(format!(
            "the scheduler at {address} did not list its executors (HTTP {status}): {}",
            body.chars().take(200).collect::<String>()
        )));
    }
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    serde_json::from_str(&body).map_err(|e| {
        Error::Unavailable(format!(
            "the scheduler at {address} listed its executors in an unexpected form: {e}"
        ))
    })
}

/// The body of a chunked HTTP/1.1 response.
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executors_are_read_as_the_scheduler_lists_them() {
        let listed = r#"[{"id":"e1","host":"127.0.0.1","port":50060,"last_seen":1765000000000,
            "specification":{"vcores":2},"metrics":[],"os_info":{}}]"#;
        let executors: Vec<Executor> = serde_json::from_str(listed).unwrap();
        assert_eq!(executors[0].specification.vcores, 2);
        assert_eq!(
            dechunk("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
            "hello world"
        );
    }
}
