//! `autolake demo`: the factory end to end on bundled sample data.
//!
//! The sample (a CSV export of customers and an NDJSON feed of orders) is
//! compiled into the binary, so the demo works offline on a fresh machine.
//! Where a PostgreSQL is reachable (`AUTOLAKE_DEMO_POSTGRES`, default
//! `postgres://postgres@127.0.0.1:5432/test`), the demo also creates a small
//! table of customer segments there; without one it says so and goes on.
//! It goes through the same session funnel as every interface: the files
//! and the database become sources, are synced into the lake schema `demo`
//! with lineage, queried,
//! corrected with an UPDATE, read back as they were before the correction
//! with time travel, used to train a model that scores every order, and
//! checked for drift between months; a job scores new orders as they land
//! and another checks prices for drift; those jobs are stamped as a
//! pipeline from a bundled template (`demo/scoring_template.sql`). It
//! starts by dropping `demo`, so running it again gives the same result.

use std::io::Write;
use std::path::PathBuf;

use arrow::array::RecordBatch;

use crate::error::{Error, Result};
use crate::principal::{Interface, Principal};
use crate::session::{Engine, Session};

const CUSTOMERS_CSV: &str = include_str!("../demo/customers.csv");
const ORDERS_NDJSON: &str = include_str!("../demo/orders.ndjson");
/// The template the demo stamps its scoring line from.
pub const SCORING_TEMPLATE: &str = include_str!("../demo/scoring_template.sql");

/// Runs the demo against `engine`'s lake, writing a readable summary.
pub async fn run(engine: &std::sync::Arc<Engine>, out: &mut dyn Write) -> Result<()> {
    let session = engine.session(Principal::local_admin(), Interface::Demo);
    let files = SampleFiles::write()?;
    steps(&session, &files, out).await
}

async fn steps(session: &Session, files: &SampleFiles, out: &mut dyn Write) -> Result<()> {
    writeln!(
        out,
        "AutoLake demo — lake at {}\n",
        session.engine().lake().uri()
    )?;

    section(out, "1. Fragmented sources")?;
    session
        .execute(&format!(
            "DROP PIPELINE IF EXISTS demo_scoring_line;
             DROP TEMPLATE IF EXISTS demo_scoring;
             DROP MONITOR IF EXISTS demo_orders_drift;
             DROP JOB IF EXISTS demo_alert_large;
             DROP JOB IF EXISTS demo_score_incoming;
             DROP JOB IF EXISTS demo_price_drift;
             DROP MODEL IF EXISTS demo_large_orders;
             DROP SCHEMA IF EXISTS demo CASCADE;
             DROP SOURCE IF EXISTS demo_files;
             DROP SOURCE IF EXISTS demo_crm;
             CREATE SOURCE demo_files TYPE files OPTIONS (location '{}/');",
            files.dir.display(),
        ))
        .await?;
    writeln!(
        out,
        "   demo_files.public.customers: CSV export  ({} rows)\n   demo_files.public.orders:    NDJSON feed ({} rows)",
        CUSTOMERS_CSV.lines().count() - 1,
        ORDERS_NDJSON.lines().count()
    )?;
    let postgres = demo_postgres(session).await;
    match &postgres {
        Ok(url) => writeln!(
            out,
            "   demo_crm.public.autolake_demo_segments: PostgreSQL table at {} ({} rows)\n",
            autolake_connectors::redact_url(url),
            SEGMENTS.len()
        )?,
        Err(why) => writeln!(out, "   PostgreSQL: not used ({why})\n")?,
    }

    section(
        out,
        "2. Unified into Delta tables in the lake (schema demo), with lineage",
    )?;
    let mut syncs = String::from(
        "CREATE SCHEMA demo;
         SYNC TABLE demo.raw_customers FROM demo_files.public.customers KEY (customer_id);
         SYNC TABLE demo.raw_orders FROM demo_files.public.orders INCREMENTAL ON order_id;",
    );
    if postgres.is_ok() {
        syncs.push_str(
            "SYNC TABLE demo.segments FROM demo_crm.public.autolake_demo_segments KEY (segment);",
        );
    }
    session.execute(&syncs).await?;
    show(
        session,
        out,
        "SELECT source, target, mode, rows, version FROM system.lineage
         WHERE target LIKE 'lake.demo.%' ORDER BY synced_at DESC, target LIMIT 3",
    )
    .await?;
    session
        .execute(
            "CREATE TABLE demo.customers AS
               SELECT CAST(customer_id AS BIGINT) AS customer_id, name, region, segment,
                      CAST(signup_date AS DATE) AS signup_date
               FROM demo.raw_customers;
             CREATE TABLE demo.orders PARTITIONED BY (product) AS
               SELECT CAST(order_id AS BIGINT) AS order_id, CAST(customer_id AS BIGINT) AS customer_id,
                      product, CAST(quantity AS INT) AS quantity,
                      CAST(unit_price AS DECIMAL(10,2)) AS unit_price,
                      CAST(ordered_at AS TIMESTAMP) AS ordered_at
               FROM demo.raw_orders;",
        )
        .await?;
    show(
        session,
        out,
        "SELECT schema, name, version, files, bytes, partition_columns FROM system.tables \
         WHERE schema = 'demo' ORDER BY name",
    )
    .await?;

    section(out, "3. Revenue by region (a join across the two sources)")?;
    show(
        session,
        out,
        "SELECT c.region, COUNT(*) AS orders, SUM(o.quantity * o.unit_price) AS revenue
         FROM demo.orders o JOIN demo.customers c USING (customer_id)
         GROUP BY c.region ORDER BY revenue DESC",
    )
    .await?;

    section(
        out,
        "4. A correction lands: licenses were billed 10% too high",
    )?;
    show(
        session,
        out,
        "UPDATE demo.orders SET unit_price = unit_price * 0.9 WHERE product = 'license'",
    )
    .await?;

    section(out, "5. Time travel: license revenue before and after")?;
    show(
        session,
        out,
        "SELECT 'version 0 (as loaded)' AS as_of, SUM(quantity * unit_price) AS license_revenue
           FROM demo.orders VERSION AS OF 0 WHERE product = 'license'
         UNION ALL
         SELECT 'latest', SUM(quantity * unit_price)
           FROM demo.orders WHERE product = 'license'
         ORDER BY as_of DESC",
    )
    .await?;

    section(
        out,
        "6. A model on the unified tables: which orders are large (3+ units)?",
    )?;
    show(
        session,
        out,
        "CREATE MODEL demo_large_orders TYPE logistic_regression
           OPTIONS (target 'large', epochs 200, learning_rate 0.05, seed 7)
         AS SELECT c.region, c.segment, o.product, CAST(o.unit_price AS DOUBLE) AS unit_price,
                   o.quantity >= 3 AS large
            FROM demo.orders o JOIN demo.customers c USING (customer_id)",
    )
    .await?;
    writeln!(
        out,
        "Every order scored with predict() into demo.order_scores:\n"
    )?;
    session
        .execute(
            "CREATE TABLE demo.order_scores AS
             SELECT o.order_id, o.quantity >= 3 AS large,
                    predict('demo_large_orders', c.region, c.segment, o.product,
                            CAST(o.unit_price AS DOUBLE)) AS predicted,
                    predict_proba('demo_large_orders', c.region, c.segment, o.product,
                                  CAST(o.unit_price AS DOUBLE)) AS probability
             FROM demo.orders o JOIN demo.customers c USING (customer_id)",
        )
        .await?;
    show(
        session,
        out,
        "SELECT order_id, large, predicted, round(probability, 3) AS probability
         FROM demo.order_scores ORDER BY order_id LIMIT 5",
    )
    .await?;
    show(
        session,
        out,
        "SELECT round(avg(CASE WHEN large = predicted THEN 1.0 ELSE 0.0 END), 3) AS accuracy,
                count(*) AS scored
         FROM demo.order_scores",
    )
    .await?;

    section(
        out,
        "7. Drift: November orders against September and October",
    )?;
    show(
        session,
        out,
        "SELECT round(drift_psi(quantity, ordered_at >= TIMESTAMP '2026-11-01'), 4) AS psi_quantity,
                round(drift_wasserstein(quantity * unit_price, ordered_at >= TIMESTAMP '2026-11-01'), 4)
                  AS wasserstein_order_value,
                round(drift_chi2(product, ordered_at >= TIMESTAMP '2026-11-01')['p_value'], 4)
                  AS chi2_p_product_mix
         FROM demo.orders",
    )
    .await?;
    writeln!(
        out,
        "The same as one statement, each column's test chosen as Evidently would:\n"
    )?;
    show(
        session,
        out,
        "CHECK DRIFT ON demo.orders COLUMNS (quantity, unit_price, product)
           REFERENCE (SELECT * FROM demo.orders WHERE ordered_at < TIMESTAMP '2026-11-01')
           CURRENT (SELECT * FROM demo.orders WHERE ordered_at >= TIMESTAMP '2026-11-01')",
    )
    .await?;
    writeln!(
        out,
        "Prices against the table as first loaded (version 0), saved as a monitor;\nevery run lands in system.drift_metrics:\n"
    )?;
    session
        .execute(
            "CREATE MONITOR demo_orders_drift ON demo.orders COLUMNS (unit_price, quantity)
               REFERENCE (VERSION AS OF 0) SCHEDULE '@daily';
             RUN MONITOR demo_orders_drift",
        )
        .await?;
    show(
        session,
        out,
        "SELECT monitor, table_version, \"column\", test, round(statistic, 4) AS statistic,
                drift_detected
         FROM system.drift_metrics WHERE monitor = 'demo_orders_drift'
         ORDER BY run_at DESC, \"column\" LIMIT 2",
    )
    .await?;

    jobs(session, out).await?;

    section(out, "9. Who changed what: DESCRIBE HISTORY demo.orders")?;
    show(session, out, "DESCRIBE HISTORY demo.orders")
        .await
        .map(|_| ())?;

    let passwords = governance(session, out).await?;
    let lake = session.engine().lake().uri();
    writeln!(out, "Done. Explore it yourself: autolake --lake {lake} sql")?;
    writeln!(
        out,
        "\nOr on the command deck: start the server with\n  autolake --lake {lake} serve\n\
         open http://127.0.0.1:8080/ and sign in as one of the demo users:"
    )?;
    for ((user, what), password) in DEMO_USERS.iter().zip(&passwords) {
        writeln!(out, "  {user:<15} password {password}   ({what})")?;
    }
    writeln!(
        out,
        "  {:<15} the password serve prints on its first start (or AUTOLAKE_ADMIN_PASSWORD)",
        "admin"
    )?;
    Ok(())
}

/// Jobs, stamped from a bundled template as a pipeline: new orders scored
/// as they land (each run reads only what was committed since the last),
/// alerts after each scoring run, and a scheduled drift check.
async fn jobs(session: &Session, out: &mut dyn Write) -> Result<()> {
    section(
        out,
        "8. Jobs, stamped from a template: new orders scored as they land, alerts after them",
    )?;
    session.execute(SCORING_TEMPLATE).await?;
    show(
        session,
        out,
        "CREATE PIPELINE demo_scoring_line FROM TEMPLATE demo_scoring
           WITH (s = demo, model = demo_large_orders, every = '10 seconds')",
    )
    .await?;
    session
        .execute(
            "INSERT INTO demo.incoming_orders VALUES
               (9001, 1, 'license', 5, 120.00, TIMESTAMP '2026-11-27 09:00:00'),
               (9002, 2, 'support', 1, 80.00, TIMESTAMP '2026-11-27 09:05:00'),
               (9003, 3, 'license', 2, 120.00, TIMESTAMP '2026-11-27 09:10:00');
             RUN JOB demo_score_incoming;
             RUN JOB demo_alert_large;
             INSERT INTO demo.incoming_orders VALUES
               (9004, 4, 'training', 4, 300.00, TIMESTAMP '2026-11-27 10:00:00');
             RUN JOB demo_score_incoming;
             RUN JOB demo_price_drift;",
        )
        .await?;
    writeln!(
        out,
        "demo_score_incoming runs every 10 seconds under `autolake serve`; here it ran twice,
after three new orders and after one more. Each run read only the new rows.
demo_alert_large runs after each scoring run that committed rows (here once, by hand):
"
    )?;
    show(
        session,
        out,
        "SELECT job, run, status, rows_read, rows_written, input_versions
         FROM system.job_runs
         WHERE job LIKE 'demo_%'
           AND start >= (SELECT max(created_at) FROM system.jobs WHERE name = 'demo_score_incoming')
         ORDER BY start, job",
    )
    .await?;
    show(
        session,
        out,
        "SELECT order_id, large, predicted, round(probability, 3) AS probability
         FROM demo.order_scores WHERE order_id > 9000 ORDER BY order_id",
    )
    .await?;
    show(
        session,
        out,
        "SELECT name, schedule, upstreams, last_run, pipeline FROM system.jobs
         WHERE name LIKE 'demo_%' ORDER BY name",
    )
    .await
    .map(|_| ())
}

/// Three users do their part under governance: the engineer maintains the
/// tables, the scientist (who sees only two regions, and customer names
/// masked) scores into the sandbox and is refused a delete, the auditor
/// reads the audit log and verifies its chain.
/// The demo's users (each named after its role) and what the deck shows them.
const DEMO_USERS: [(&str, &str); 3] = [
    ("demo_engineer", "engineer: tables, sources, jobs"),
    (
        "demo_scientist",
        "scientist: the lake read-only, models, the sandbox",
    ),
    ("demo_auditor", "auditor: system tables and the audit log"),
];

/// Returns the demo users' passwords, in [`DEMO_USERS`] order.
async fn governance(admin: &Session, out: &mut dyn Write) -> Result<Vec<String>> {
    section(
        out,
        "10. Governance: an engineer, a scientist and an auditor at work",
    )?;
    // Fresh passwords every run, printed at the end for the command deck.
    let passwords: Vec<String> = DEMO_USERS
        .iter()
        .map(|_| crate::governance::accounts::random_token(8))
        .collect();
    for ((user, _), password) in DEMO_USERS.iter().zip(&passwords) {
        let role = user.trim_start_matches("demo_");
        admin
            .execute(&format!(
                "CREATE USER IF NOT EXISTS {user} PASSWORD '{password}' ROLE {role};
                 ALTER USER {user} PASSWORD '{password}'"
            ))
            .await?;
    }
    admin
        .execute(
            "CREATE SCHEMA IF NOT EXISTS sandbox;
             DROP TABLE IF EXISTS sandbox.demo_south_east_scores;
             CREATE POLICY south_east ON demo.customers TO scientist
               USING (region IN ('south', 'east'));
             ALTER TABLE demo.customers ALTER COLUMN name SET MASK (left(name, 1) || '***')",
        )
        .await?;
    writeln!(
        out,
        "Policy: scientists see customers of the south and east only; names are masked for all.
"
    )?;
    let as_user = |name: &str| {
        admin.engine().session(
            Principal {
                name: name.to_string(),
                roles: Vec::new(),
                stored: true,
            },
            Interface::Demo,
        )
    };
    let engineer = as_user("demo_engineer");
    writeln!(out, "demo_engineer compacts demo.orders:")?;
    show(&engineer, out, "OPTIMIZE demo.orders").await?;
    let scientist = as_user("demo_scientist");
    writeln!(
        out,
        "demo_scientist scores the customers it may see into the sandbox:"
    )?;
    scientist
        .execute(
            "CREATE TABLE sandbox.demo_south_east_scores AS
             SELECT c.name, c.region, count(*) AS orders,
                    round(avg(predict_proba('demo_large_orders', c.region, c.segment, o.product,
                                            CAST(o.unit_price AS DOUBLE))), 3) AS p_large
             FROM demo.orders o JOIN demo.customers c USING (customer_id)
             GROUP BY c.name, c.region",
        )
        .await?;
    show(
        &scientist,
        out,
        "SELECT region, count(*) AS customers, sum(orders) AS orders
         FROM sandbox.demo_south_east_scores GROUP BY region ORDER BY region",
    )
    .await?;
    match scientist.execute("DELETE FROM demo.orders").await {
        Err(e) => writeln!(
            out,
            "demo_scientist tries DELETE FROM demo.orders: {e}
"
        )?,
        Ok(_) => writeln!(
            out,
            "demo_scientist deleted demo.orders (unexpected)
"
        )?,
    }
    let auditor = as_user("demo_auditor");
    writeln!(
        out,
        "demo_auditor reads the audit log and checks its chain:"
    )?;
    show(
        &auditor,
        out,
        "SELECT user, kind, outcome, coalesce(rows, 0) AS rows FROM system.audit_log
         WHERE user IN ('demo_engineer', 'demo_scientist', 'demo_auditor')
         ORDER BY seq DESC LIMIT 5",
    )
    .await?;
    show(&auditor, out, "VERIFY AUDIT LOG").await?;
    Ok(passwords)
}

/// The demo's PostgreSQL table: customer segments and their discounts.
const SEGMENTS: [(&str, &str, f64); 3] = [
    ("smb", "Small business", 0.05),
    ("enterprise", "Enterprise", 0.15),
    ("retail", "Retail", 0.0),
];

/// Creates the demo's table in PostgreSQL (when one is reachable) and the
/// source `demo_crm` over it; returns the URL used, or why not.
async fn demo_postgres(session: &Session) -> std::result::Result<String, String> {
    let url = std::env::var("AUTOLAKE_DEMO_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string());
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| format!("AUTOLAKE_DEMO_POSTGRES is not a PostgreSQL URL: {e}"))?;
    config.connect_timeout(std::time::Duration::from_secs(2));
    let shown = autolake_connectors::redact_url(&url);
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|_| format!("none reachable at {shown}"))?;
    let task = tokio::spawn(connection);
    let mut script = String::from(
        "DROP TABLE IF EXISTS autolake_demo_segments;
         CREATE TABLE autolake_demo_segments (segment text PRIMARY KEY, label text, discount numeric(4,2));",
    );
    for (segment, label, discount) in SEGMENTS {
        script.push_str(&format!(
            "INSERT INTO autolake_demo_segments VALUES ('{segment}', '{label}', {discount});"
        ));
    }
    let created = client.batch_execute(&script).await;
    drop(client);
    task.abort();
    created.map_err(|e| format!("cannot create its table at {shown}: {e}"))?;
    session
        .execute(&format!(
            "CREATE SOURCE demo_crm TYPE postgres OPTIONS (url '{}')",
            url.replace('\'', "''")
        ))
        .await
        .map_err(|e| e.to_string())?;
    Ok(url)
}

fn section(out: &mut dyn Write, title: &str) -> Result<()> {
    writeln!(out, "== {title}")?;
    Ok(())
}

async fn show(session: &Session, out: &mut dyn Write, sql: &str) -> Result<Vec<RecordBatch>> {
    let batches = session.execute(sql).await?;
    let batches = if sql.starts_with("DESCRIBE HISTORY") {
        // Keep the history readable: the metrics JSON is long.
        batches
            .iter()
            .map(|b| {
                let keep: Vec<usize> = ["version", "timestamp", "operation", "user", "statement"]
                    .iter()
                    .filter_map(|c| b.schema().index_of(c).ok())
                    .collect();
                b.project(&keep)
            })
            .collect::<std::result::Result<Vec<_>, _>>()?
    } else {
        batches
    };
    writeln!(
        out,
        "{}\n",
        arrow::util::pretty::pretty_format_batches(&batches)?
    )?;
    Ok(batches)
}

/// The bundled files, written to a stable temporary folder that the
/// source `demo_files` keeps reading after the demo (each file replaced
/// atomically, so concurrent demos never see half a file).
struct SampleFiles {
    dir: PathBuf,
}

impl SampleFiles {
    fn write() -> Result<Self> {
        let dir = std::env::temp_dir().join("autolake-demo-files");
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::internal(format!("cannot write the demo's sample files: {e}")))?;
        for (name, text) in [
            ("customers.csv", CUSTOMERS_CSV),
            ("orders.ndjson", ORDERS_NDJSON),
        ] {
            let tmp = dir.join(format!(".{name}.{}", std::process::id()));
            std::fs::write(&tmp, text)?;
            std::fs::rename(&tmp, dir.join(name))?;
        }
        Ok(Self { dir })
    }
}
