//! Message streams end to end: a NATS JetStream subject and an MQTT topic
//! read by jobs into lake tables, with the broker restarted in the middle,
//! bad messages quarantined, and (NATS) redelivered messages never written
//! twice.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::services::Service;
use super::{count, ok, sql};

/// Runs the job until a run succeeds (a broker that just restarted may
/// refuse the first connection).
fn run_job(lake: &Path, job: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = sql(lake, &format!("RUN JOB {job}"));
        if out.status.success() {
            return String::from_utf8(out.stdout).unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "RUN JOB {job} kept failing: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn unique() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{}_{nanos}", std::process::id())
}

async fn publish(stream: &str, subject: &str, from: i64, to: i64, bad: bool) {
    let client = async_nats::connect(Service::Nats.address()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    js.get_or_create_stream(async_nats::jetstream::stream::Config {
        name: stream.to_string(),
        subjects: vec![format!("{subject}.>")],
        ..Default::default()
    })
    .await
    .unwrap();
    for i in from..to {
        let payload = format!("{{\"id\": {i}, \"page\": \"p{}\", \"extra\": true}}", i % 3);
        js.publish(format!("{subject}.clicks"), payload.into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    if bad {
        js.publish(format!("{subject}.clicks"), "not json".into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_subject_lands_exactly_once_across_a_broker_restart() {
    let nats = Service::Nats.url();
    let id = unique();
    let stream = format!("AUTOLAKE_TEST_{id}");
    let subject = format!("autolake.test.{id}");
    publish(&stream, &subject, 0, 100, true).await;

    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().to_path_buf();
    ok(sql(
        &lake,
        &format!(
            "CREATE SOURCE feed TYPE nats OPTIONS (url '{nats}', stream '{stream}', subject '{subject}.>'); \
             CREATE TABLE clicks (id BIGINT, page TEXT); \
             CREATE JOB ingest EVERY '1 second' AS SYNC TABLE clicks FROM feed"
        ),
    ));
    let lake2 = lake.clone();
    let run = tokio::task::spawn_blocking(move || run_job(&lake2, "ingest"))
        .await
        .unwrap();
    assert!(run.contains("succeeded"), "{run}");
    assert_eq!(count(&lake, "SELECT count(DISTINCT id) FROM clicks"), 100);
    assert_eq!(
        ok(sql(&lake, "SELECT payload, subject FROM clicks_rejected")),
        format!("payload,subject\nnot json,{subject}.clicks\n")
    );

    // The broker goes away and comes back; JetStream keeps the stream and
    // the consumer's position on disk.
    tokio::task::spawn_blocking(|| {
        Service::Nats.restart();
        Service::Nats.wait_up();
    })
    .await
    .unwrap();
    publish(&stream, &subject, 100, 150, false).await;
    let lake2 = lake.clone();
    tokio::task::spawn_blocking(move || run_job(&lake2, "ingest"))
        .await
        .unwrap();
    assert_eq!(
        ok(sql(
            &lake,
            "SELECT count(*) AS n, count(DISTINCT id) AS ids FROM clicks"
        )),
        "n,ids\n150,150\n"
    );

    // The consumer forgets everything (as after a crash between the commit
    // and the acknowledgement): every message is delivered again, and the
    // committed stream sequence keeps each out of the table.
    let client = async_nats::connect(Service::Nats.address()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    js.get_stream(&stream)
        .await
        .unwrap()
        .delete_consumer("autolake_public_clicks")
        .await
        .unwrap();
    publish(&stream, &subject, 150, 160, false).await;
    let lake2 = lake.clone();
    tokio::task::spawn_blocking(move || run_job(&lake2, "ingest"))
        .await
        .unwrap();
    assert_eq!(
        ok(sql(
            &lake,
            "SELECT count(*) AS n, count(DISTINCT id) AS ids, max(id) AS top FROM clicks"
        )),
        "n,ids,top\n160,160,159\n"
    );
    js.delete_stream(&stream).await.unwrap();
}

fn mqtt_publish(topic: &str, lines: &[String]) {
    use std::io::Write;
    let mut child = Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &Service::Mosquitto.port().to_string(),
            "-q",
            "1",
            "-t",
            topic,
            "-l",
        ])
        .stdin(Stdio::piped())
        .spawn()
        .expect("mosquitto_pub runs (Debian package mosquitto-clients)");
    let mut stdin = child.stdin.take().unwrap();
    for line in lines {
        writeln!(stdin, "{line}").unwrap();
    }
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

/// Runs the job until `rows` readings have landed: the broker hands a
/// session at most its in-flight window of unacknowledged messages
/// (Mosquitto: 20) per run, as acknowledgements wait for the commit.
fn drain(lake: &Path, rows: i64) {
    for _ in 0..20 {
        if count(lake, "SELECT count(*) FROM readings") >= rows {
            return;
        }
        run_job(lake, "ingest");
    }
    panic!(
        "only {} of {rows} readings after 20 runs",
        count(lake, "SELECT count(*) FROM readings")
    );
}

#[test]
fn an_mqtt_topic_lands_in_a_table_across_a_broker_restart() {
    let mqtt = Service::Mosquitto.url();
    let id = unique();
    let topic = format!("autolake/test/{id}");
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path();
    ok(sql(
        lake,
        &format!(
            "CREATE SOURCE sensors TYPE mqtt OPTIONS (url '{mqtt}', topic '{topic}/#'); \
             CREATE TABLE readings (sensor TEXT, temp DOUBLE); \
             CREATE JOB ingest EVERY '1 second' AS SYNC TABLE readings FROM sensors"
        ),
    ));
    // The first run opens the persistent session the broker keeps
    // messages in while no run is connected.
    run_job(lake, "ingest");
    let batch = |from: usize, to: usize| -> Vec<String> {
        (from..to)
            .map(|i| format!("{{\"sensor\": \"s{}\", \"temp\": {i}.5}}", i % 4))
            .collect()
    };
    let mut first = batch(0, 40);
    first.push("{\"sensor\": \"s1\", \"temp\": \"hot\"}".to_string());
    mqtt_publish(&format!("{topic}/a"), &first);
    drain(lake, 40);
    assert_eq!(count(lake, "SELECT count(*) FROM readings"), 40);
    assert_eq!(count(lake, "SELECT count(*) FROM readings_rejected"), 1);

    Service::Mosquitto.restart();
    Service::Mosquitto.wait_up();
    mqtt_publish(&format!("{topic}/b"), &batch(40, 70));
    drain(lake, 70);
    assert_eq!(
        ok(sql(
            lake,
            "SELECT count(*) AS n, round(sum(temp), 1) AS total FROM readings"
        )),
        "n,total\n70,2450.0\n"
    );
}
