//! Message streams as sources: NATS JetStream subjects and MQTT topics,
//! read by jobs in micro-batches.
//!
//! A stream source is a catalog with no tables (a query cannot consume
//! messages as a side effect); `SYNC TABLE t FROM source` reads what has
//! arrived, and the engine acknowledges it only after the Delta commit
//! holding it, so a crash in between redelivers rather than loses.
//!
//! - **NATS JetStream**: a durable pull consumer per target table
//!   (`autolake_<schema>_<table>`, acknowledge-all policy) on the source's
//!   stream and subject filter. Every message carries its stream sequence,
//!   which the engine commits with the rows; a redelivered message at or
//!   below the committed sequence is acknowledged and skipped, so the
//!   table gets each message exactly once.
//! - **MQTT**: a persistent session (clean session off, a client id per
//!   target table and source definition) subscribed at QoS 1 with manual
//!   acknowledgements; the broker keeps the session's messages while no job
//!   runs, and hands a run at most its in-flight window of unacknowledged
//!   messages (Mosquitto: 20), so a backlog drains over several runs. MQTT has no
//!   message identity that survives a reconnect, so a crash between the
//!   commit and the acknowledgements redelivers those messages:
//!   at-least-once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datafusion::catalog::MemoryCatalogProvider;
use datafusion::execution::session_state::SessionState;
use futures::StreamExt;

use crate::connector::{Connector, Error, OpenedSource, OptionSpec, Result, scrub, secrets_of};

const NATS_OPTIONS: &[OptionSpec] = &[
    OptionSpec::url("url"),
    OptionSpec::required("stream"),
    OptionSpec::plain("subject"),
    OptionSpec::plain("format"),
];

const MQTT_OPTIONS: &[OptionSpec] = &[
    OptionSpec::url("url"),
    OptionSpec::required("topic"),
    OptionSpec::plain("format"),
];

/// One message read from a stream.
#[derive(Debug, Clone)]
pub struct StreamMessage {
    /// Its bytes.
    pub payload: bytes::Bytes,
    /// The subject or topic it was published on.
    pub subject: String,
    /// The JetStream stream sequence (0 for MQTT).
    pub sequence: u64,
}

/// Messages read and not yet acknowledged.
pub struct StreamBatch {
    /// The messages, in order.
    pub messages: Vec<StreamMessage>,
    ack: Acker,
}

impl std::fmt::Debug for StreamBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamBatch")
            .field("messages", &self.messages.len())
            .finish()
    }
}

enum Acker {
    None,
    Nats(Box<async_nats::jetstream::Message>),
    Mqtt {
        client: rumqttc::AsyncClient,
        eventloop: Box<rumqttc::EventLoop>,
        publishes: Vec<rumqttc::Publish>,
    },
}

impl StreamBatch {
    /// Acknowledges every message of the batch (call after the commit).
    pub async fn ack(self, source: &str) -> Result<()> {
        let fail = |message: String| Error::Source {
            source_name: source.to_string(),
            message,
        };
        match self.ack {
            Acker::None => Ok(()),
            // Acknowledge-all: the last message covers the batch; the
            // double ack waits for the server to confirm it.
            Acker::Nats(last) => last
                .double_ack()
                .await
                .map_err(|e| fail(format!("acknowledging messages failed: {e}"))),
            Acker::Mqtt {
                client,
                mut eventloop,
                publishes,
            } => {
                for p in &publishes {
                    client
                        .ack(p)
                        .await
                        .map_err(|e| fail(format!("acknowledging messages failed: {e}")))?;
                }
                client
                    .disconnect()
                    .await
                    .map_err(|e| fail(format!("disconnecting failed: {e}")))?;
                // Drive the connection until the broker has the
                // acknowledgements and the disconnect: the event loop
                // reports an error once the connection is closed.
                let flush = async { while eventloop.poll().await.is_ok() {} };
                let _ = tokio::time::timeout(Duration::from_secs(5), flush).await;
                Ok(())
            }
        }
    }
}

/// NATS JetStream subjects.
#[derive(Debug, Default)]
pub struct NatsConnector;

/// MQTT topics.
#[derive(Debug, Default)]
pub struct MqttConnector;

fn empty_source() -> OpenedSource {
    OpenedSource {
        catalog: Arc::new(MemoryCatalogProvider::new()),
        stores: Vec::new(),
    }
}

fn source_error(
    name: &str,
    options: &BTreeMap<String, String>,
    specs: &[OptionSpec],
    message: String,
) -> Error {
    Error::Source {
        source_name: name.to_string(),
        message: scrub(&message, &secrets_of(specs, options)),
    }
}

async fn nats_stream(
    name: &str,
    options: &BTreeMap<String, String>,
) -> Result<async_nats::jetstream::stream::Stream> {
    let fail = |m: String| source_error(name, options, NATS_OPTIONS, m);
    let url = options.get("url").cloned().unwrap_or_default();
    let client = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(5))
        .connect(url.as_str())
        .await
        .map_err(|e| fail(format!("cannot connect to NATS at {url}: {e}")))?;
    let stream_name = options.get("stream").cloned().unwrap_or_default();
    async_nats::jetstream::new(client)
        .get_stream(&stream_name)
        .await
        .map_err(|e| {
            fail(format!(
                "JetStream stream {stream_name} is not available: {e}"
            ))
        })
}

#[async_trait]
impl Connector for NatsConnector {
    fn type_name(&self) -> &'static str {
        "nats"
    }

    fn options(&self) -> &'static [OptionSpec] {
        NATS_OPTIONS
    }

    async fn open(
        &self,
        name: &str,
        options: &BTreeMap<String, String>,
        _state: &SessionState,
    ) -> Result<OpenedSource> {
        check_format(name, options)?;
        nats_stream(name, options).await?;
        Ok(empty_source())
    }
}

#[async_trait]
impl Connector for MqttConnector {
    fn type_name(&self) -> &'static str {
        "mqtt"
    }

    fn options(&self) -> &'static [OptionSpec] {
        MQTT_OPTIONS
    }

    async fn open(
        &self,
        name: &str,
        options: &BTreeMap<String, String>,
        _state: &SessionState,
    ) -> Result<OpenedSource> {
        check_format(name, options)?;
        // Reachability: connect with a throwaway clean session.
        let (client, mut eventloop) =
            mqtt_client(name, options, &format!("autolake-check-{name}"), true)?;
        let connected = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match eventloop.poll().await {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => return Ok(()),
                    Ok(_) => {}
                    Err(e) => return Err(e.to_string()),
                }
            }
        })
        .await;
        let _ = client.disconnect().await;
        match connected {
            Ok(Ok(())) => Ok(empty_source()),
            Ok(Err(e)) => Err(source_error(
                name,
                options,
                MQTT_OPTIONS,
                format!("cannot connect to the MQTT broker: {e}"),
            )),
            Err(_) => Err(source_error(
                name,
                options,
                MQTT_OPTIONS,
                "cannot connect to the MQTT broker: timed out".to_string(),
            )),
        }
    }
}

fn check_format(name: &str, options: &BTreeMap<String, String>) -> Result<()> {
    match options.get("format").map(|f| f.to_ascii_lowercase()) {
        None => Ok(()),
        Some(f) if f == "json" => Ok(()),
        Some(f) => Err(Error::Source {
            source_name: name.to_string(),
            message: format!(
                "unsupported format '{f}': messages are read as JSON objects (format 'json')"
            ),
        }),
    }
}

fn mqtt_client(
    name: &str,
    options: &BTreeMap<String, String>,
    client_id: &str,
    clean: bool,
) -> Result<(rumqttc::AsyncClient, rumqttc::EventLoop)> {
    let url = options.get("url").cloned().unwrap_or_default();
    let parsed = url::Url::parse(&url)
        .map_err(|e| source_error(name, options, MQTT_OPTIONS, format!("invalid url: {e}")))?;
    if !matches!(parsed.scheme(), "mqtt" | "tcp") {
        return Err(source_error(
            name,
            options,
            MQTT_OPTIONS,
            format!(
                "unsupported url scheme '{}': expected mqtt://host:port",
                parsed.scheme()
            ),
        ));
    }
    let host = parsed.host_str().unwrap_or("127.0.0.1").to_string();
    let port = parsed.port().unwrap_or(1883);
    let mut mqtt = rumqttc::MqttOptions::new(client_id, host, port);
    mqtt.set_clean_session(clean);
    mqtt.set_manual_acks(true);
    mqtt.set_keep_alive(Duration::from_secs(30));
    if !parsed.username().is_empty() {
        mqtt.set_credentials(parsed.username(), parsed.password().unwrap_or_default());
    }
    Ok(rumqttc::AsyncClient::new(mqtt, 1024))
}

/// Reads up to `max` messages that have arrived for `consumer` (waiting at
/// most `wait` for the first), without acknowledging them.
pub async fn read(
    source_type: &str,
    name: &str,
    options: &BTreeMap<String, String>,
    consumer: &str,
    max: usize,
    wait: Duration,
) -> Result<StreamBatch> {
    match source_type {
        "nats" => read_nats(name, options, consumer, max, wait).await,
        "mqtt" => read_mqtt(name, options, consumer, max, wait).await,
        other => Err(Error::Source {
            source_name: name.to_string(),
            message: format!("source type {other} is not a message stream"),
        }),
    }
}

async fn read_nats(
    name: &str,
    options: &BTreeMap<String, String>,
    consumer: &str,
    max: usize,
    wait: Duration,
) -> Result<StreamBatch> {
    use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
    let fail = |m: String| source_error(name, options, NATS_OPTIONS, m);
    let stream = nats_stream(name, options).await?;
    let config = pull::Config {
        durable_name: Some(consumer.to_string()),
        filter_subject: options.get("subject").cloned().unwrap_or_default(),
        ack_policy: AckPolicy::All,
        deliver_policy: DeliverPolicy::All,
        // Unacknowledged messages come back after this long.
        ack_wait: Duration::from_secs(30),
        ..Default::default()
    };
    let consumer: async_nats::jetstream::consumer::PullConsumer = stream
        .get_or_create_consumer(consumer, config)
        .await
        .map_err(|e| fail(format!("cannot open consumer {consumer}: {e}")))?;
    let mut batch = consumer
        .batch()
        .max_messages(max)
        .expires(wait)
        .messages()
        .await
        .map_err(|e| fail(format!("reading messages failed: {e}")))?;
    let mut messages = Vec::new();
    let mut last = None;
    while let Some(message) = batch.next().await {
        let message = message.map_err(|e| fail(format!("reading messages failed: {e}")))?;
        let sequence = message
            .info()
            .map_err(|e| fail(format!("a message without JetStream metadata: {e}")))?
            .stream_sequence;
        messages.push(StreamMessage {
            payload: message.payload.clone(),
            subject: message.subject.to_string(),
            sequence,
        });
        last = Some(message);
    }
    Ok(StreamBatch {
        messages,
        ack: match last {
            Some(m) => Acker::Nats(Box::new(m)),
            None => Acker::None,
        },
    })
}

async fn read_mqtt(
    name: &str,
    options: &BTreeMap<String, String>,
    consumer: &str,
    max: usize,
    wait: Duration,
) -> Result<StreamBatch> {
    let fail = |m: String| source_error(name, options, MQTT_OPTIONS, m);
    let topic = options.get("topic").cloned().unwrap_or_default();
    let (client, mut eventloop) = mqtt_client(name, options, consumer, false)?;
    // Connect; subscribe when the broker has no session for this client.
    let connected = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match eventloop.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(ack))) => {
                    return Ok(ack.session_present);
                }
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    })
    .await
    .map_err(|_| fail("cannot connect to the MQTT broker: timed out".to_string()))?
    .map_err(|e| fail(format!("cannot connect to the MQTT broker: {e}")))?;
    // Subscribing again keeps the session's queued messages.
    let _session_present = connected;
    client
        .subscribe(topic.as_str(), rumqttc::QoS::AtLeastOnce)
        .await
        .map_err(|e| fail(format!("cannot subscribe to {topic}: {e}")))?;
    let mut messages = Vec::new();
    let mut publishes = Vec::new();
    // Read until `max` messages, or until none has arrived for `wait`.
    while messages.len() < max {
        match tokio::time::timeout(wait, eventloop.poll()).await {
            Err(_) => break,
            Ok(Err(e)) => return Err(fail(format!("reading messages failed: {e}"))),
            Ok(Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p)))) => {
                messages.push(StreamMessage {
                    payload: p.payload.clone(),
                    subject: p.topic.clone(),
                    sequence: 0,
                });
                publishes.push(p);
            }
            Ok(Ok(_)) => {}
        }
    }
    Ok(StreamBatch {
        messages,
        ack: Acker::Mqtt {
            client,
            eventloop: Box::new(eventloop),
            publishes,
        },
    })
}
