//! Flight SQL connections: accepting them, TLS, and HTTP/2 on hyper.
//!
//! tonic's own `Server` does the same on top of hyper, but does not let its
//! HTTP/2 send buffer be sized, and that buffer decides how a large result
//! goes out. hyper's server keeps at most 400 KiB of a response queued per
//! stream (its default): a `DoGet` body (see [`super::doget`]) whose pieces
//! were 256 KiB could then be at most two pieces ahead of the socket, so the
//! connection task and the task feeding it the body took turns every frame
//! or two, each turn a wake-up and a poll of both. With [`SEND_BUFFER`]
//! queued the connection writes until the socket is full and the body fills
//! the room in one poll. Flow control is unchanged: the client's window
//! still decides what is sent, and a body is still polled only when there
//! is room, so back-pressure reaches the query as before.
//!
//! Measured on 2 cores, 10 M rows (0.6 GB) read 25 times in turn by the
//! `pyarrow.flight` client from this and from tonic's server: server CPU
//! per read 0.27 s against 0.33 s (medians), best wall time 336 against
//! 379 ms. With 400 KiB, 1, 4 and 16 MiB per stream the server's CPU was
//! 0.31, 0.30, 0.29 and 0.27 s; 4 MiB keeps most of the gain at a quarter
//! of the memory a stream may hold.
//!
//! Everything else is what tonic's server does, as InfluxDB 3 also serves
//! its gRPC services on hyper directly: TCP_NODELAY on every connection,
//! TLS with rustls (ALPN `h2`) when a certificate is given, HTTP/2 only,
//! the `grpc-timeout` a client sends applied to each call, and a graceful
//! stop: the listener closes, every connection is told to go away
//! (HTTP/2 GOAWAY), and calls in flight run to their end.

use std::sync::Arc;
use std::time::Duration;

use arrow_flight::flight_service_server::FlightServiceServer;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tonic::Status;
use tonic::codegen::Service;
use tonic::codegen::http::{HeaderMap, Request};

use crate::error::{Error, Result};

/// Response bytes hyper may queue per stream (see the module docs).
const SEND_BUFFER: usize = 4 << 20;

/// How long a client may take over the TLS handshake.
const TLS_HANDSHAKE: Duration = Duration::from_secs(10);

/// The service every connection serves: Flight SQL behind its token check.
type FlightService =
    super::flight::RequireToken<FlightServiceServer<super::flight::AutoLakeFlightSql>>;

/// The rustls configuration of a server with this PEM certificate chain
/// and private key.
pub(super) fn tls_config(cert: &[u8], key: &[u8]) -> Result<Arc<rustls::ServerConfig>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let invalid = |what: &str| Error::invalid(format!("invalid TLS certificate or key: {what}"));
    let chain = CertificateDer::pem_slice_iter(cert)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| invalid(&format!("cannot read the certificate: {e}")))?;
    if chain.is_empty() {
        return Err(invalid(
            "the certificate file holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(key)
        .map_err(|e| invalid(&format!("cannot read the private key: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(&e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| invalid(&e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// Serves `service` on every connection `listener` accepts until `stop`
/// turns true, then waits for the calls in flight. Runs on the runtime it
/// is spawned on (the network runtime), as do the connections.
pub(super) async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    service: FlightService,
    mut stop: watch::Receiver<bool>,
) {
    let tls = tls.map(tokio_rustls::TlsAcceptor::from);
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_send_buf_size(SEND_BUFFER);
    // Every connection holds a sender; when the last is gone, so are they.
    let (open_tx, mut open_rx) = mpsc::channel::<()>(1);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped(&mut stop) => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: pause rather than
                // spin, then go on accepting.
                tracing::warn!("cannot accept a Flight SQL connection: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Without TCP_NODELAY a small reply waits for the peer's delayed
        // ACK (tens of milliseconds per round trip).
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(
            stream,
            tls.clone(),
            builder.clone(),
            service.clone(),
            stop.clone(),
            open_tx.clone(),
        ));
    }
    drop(listener);
    drop(open_tx);
    let _ = open_rx.recv().await;
}

/// One connection, to its end or to the end of its calls after a stop.
async fn connection(
    stream: TcpStream,
    tls: Option<tokio_rustls::TlsAcceptor>,
    builder: hyper::server::conn::http2::Builder<TokioExecutor>,
    service: FlightService,
    stop: watch::Receiver<bool>,
    open: mpsc::Sender<()>,
) {
    let stream = Lingering {
        stream: Some(stream),
        open: Some(open),
    };
    match tls {
        None => http2(TokioIo::new(stream), builder, service, stop).await,
        Some(acceptor) => {
            match tokio::time::timeout(TLS_HANDSHAKE, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => http2(TokioIo::new(stream), builder, service, stop).await,
                Ok(Err(e)) => tracing::debug!("TLS handshake failed: {e}"),
                Err(_) => tracing::debug!("TLS handshake timed out"),
            }
        }
    }
}

/// HTTP/2 on one connection (TLS already done), each request a call to
/// `service` under the client's deadline, until its end or a stop.
async fn http2(
    io: impl hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    builder: hyper::server::conn::http2::Builder<TokioExecutor>,
    service: FlightService,
    mut stop: watch::Receiver<bool>,
) {
    let calls = hyper::service::service_fn(move |request: Request<Incoming>| {
        let mut service = service.clone();
        async move {
            let timeout = grpc_timeout(request.headers());
            futures::future::poll_fn(|cx| service.poll_ready(cx)).await?;
            let call = service.call(request.map(tonic::body::Body::new));
            match timeout {
                None => call.await,
                Some(limit) => match tokio::time::timeout(limit, call).await {
                    Ok(response) => response,
                    Err(_) => Ok(Status::deadline_exceeded(
                        "the call did not finish within the client's deadline",
                    )
                    .into_http()),
                },
            }
        }
    });
    let connection = builder.serve_connection(io, calls);
    tokio::pin!(connection);
    let outcome = tokio::select! {
        outcome = connection.as_mut() => outcome,
        _ = stopped(&mut stop) => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = outcome {
        tracing::debug!("Flight SQL connection ended: {e}");
    }
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// The deadline a gRPC client sets on a call (`grpc-timeout`: at most
/// eight digits and a unit), if it sets one that can be read.
fn grpc_timeout(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get("grpc-timeout")?.to_str().ok()?;
    let digits = value.get(..value.len().checked_sub(1)?)?;
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    Some(match value.as_bytes().last()? {
        b'H' => Duration::from_secs(amount * 3600),
        b'M' => Duration::from_secs(amount * 60),
        b'S' => Duration::from_secs(amount),
        b'm' => Duration::from_millis(amount),
        b'u' => Duration::from_micros(amount),
        b'n' => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// How long a closed connection waits for its peer to close too.
const LINGER: Duration = Duration::from_secs(2);

/// A connection's socket, closed the way TCP wants when hyper is done with
/// it: this side shut down first, then whatever the peer still sends
/// (window updates, pings) read and dropped until the peer closes too, or
/// for at most [`LINGER`]. Closing a socket with unread bytes makes the
/// kernel reset the connection, and a reset can discard the last response
/// bytes the client has received but not read yet, which happens on a
/// graceful stop when the process exits right after its last call ends.
/// The drain holds the server's count of open connections, so a stopping
/// server waits for it.
struct Lingering {
    stream: Option<TcpStream>,
    open: Option<mpsc::Sender<()>>,
}

impl Lingering {
    fn stream(self: std::pin::Pin<&mut Self>) -> std::pin::Pin<&mut TcpStream> {
        std::pin::Pin::new(
            self.get_mut()
                .stream
                .as_mut()
                .expect("the socket is there until the connection is dropped"),
        )
    }
}

impl tokio::io::AsyncRead for Lingering {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.stream().poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Lingering {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.stream().poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.stream().poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.as_ref().is_some_and(|s| s.is_write_vectored())
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.stream().poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.stream().poll_shutdown(cx)
    }
}

impl Drop for Lingering {
    fn drop(&mut self) {
        let (Some(mut stream), open) = (self.stream.take(), self.open.take()) else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let _open = open;
            let _ = stream.shutdown().await;
            let mut sink = [0u8; 4096];
            let drain = async {
                while let Ok(n) = stream.read(&mut sink).await {
                    if n == 0 {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(LINGER, drain).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use tonic::codegen::http::HeaderValue;

    use super::*;

    #[test]
    fn client_deadlines_are_read_in_every_unit() {
        let timeout = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert("grpc-timeout", HeaderValue::from_str(value).unwrap());
            grpc_timeout(&headers)
        };
        assert_eq!(timeout("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(timeout("3M"), Some(Duration::from_secs(180)));
        assert_eq!(timeout("30S"), Some(Duration::from_secs(30)));
        assert_eq!(timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(
            timeout("99999999u"),
            Some(Duration::from_micros(99_999_999))
        );
        assert_eq!(timeout("10n"), Some(Duration::from_nanos(10)));
        for bad in ["", "S", "123456789S", "5x", "-5S", "1.5S"] {
            assert_eq!(timeout(bad), None, "{bad:?}");
        }
        assert_eq!(grpc_timeout(&HeaderMap::new()), None);
    }

    #[test]
    fn tls_configuration_errors_say_what_is_wrong() {
        let err = tls_config(b"not a certificate", b"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("no PEM certificate"), "{err}");
        let cert = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        let err = tls_config(cert, b"no key here").unwrap_err().to_string();
        assert!(err.contains("private key"), "{err}");
    }
}
