//! `autolake demo`: the factory end to end on bundled sample data.
//!
//! The sample (a CSV export of customers and an NDJSON feed of orders) is
//! compiled into the binary, so the demo works offline on a fresh machine.
//! It goes through the same session funnel as every interface: the files
//! are read as external tables, loaded into the lake schema `demo`, queried,
//! corrected with an UPDATE, read back as they were before the correction
//! with time travel, used to train a model that scores every order, and
//! checked for drift between months. It starts by dropping `demo`, so running it
//! again gives the same result.

use std::io::Write;
use std::path::PathBuf;

use arrow::array::RecordBatch;

use crate::error::{Error, Result};
use crate::principal::{Interface, Principal};
use crate::session::{Engine, Session};

const CUSTOMERS_CSV: &str = include_str!("../demo/customers.csv");
const ORDERS_NDJSON: &str = include_str!("../demo/orders.ndjson");

/// Runs the demo against `engine`'s lake, writing a readable summary.
pub async fn run(engine: &std::sync::Arc<Engine>, out: &mut dyn Write) -> Result<()> {
    let session = engine.session(Principal::local_admin(), Interface::Demo);
    let files = SampleFiles::write()?;
    let result = steps(&session, &files, out).await;
    drop(files);
    result
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
            "CREATE EXTERNAL TABLE demo_customers_csv STORED AS CSV LOCATION '{}' OPTIONS ('format.has_header' 'true');
             CREATE EXTERNAL TABLE demo_orders_feed STORED AS JSON LOCATION '{}';",
            files.customers.display(),
            files.orders.display()
        ))
        .await?;
    writeln!(
        out,
        "   customers: CSV export  ({} rows)\n   orders:    NDJSON feed ({} rows)\n",
        CUSTOMERS_CSV.lines().count() - 1,
        ORDERS_NDJSON.lines().count()
    )?;

    section(
        out,
        "2. Unified into Delta tables in the lake (schema demo)",
    )?;
    session
        .execute(
            "DROP MONITOR IF EXISTS demo_orders_drift;
             DROP MODEL IF EXISTS demo_large_orders;
             DROP SCHEMA IF EXISTS demo CASCADE;
             CREATE SCHEMA demo;
             CREATE TABLE demo.customers AS
               SELECT CAST(customer_id AS BIGINT) AS customer_id, name, region, segment,
                      CAST(signup_date AS DATE) AS signup_date
               FROM demo_customers_csv;
             CREATE TABLE demo.orders PARTITIONED BY (product) AS
               SELECT CAST(order_id AS BIGINT) AS order_id, CAST(customer_id AS BIGINT) AS customer_id,
                      product, CAST(quantity AS INT) AS quantity,
                      CAST(unit_price AS DECIMAL(10,2)) AS unit_price,
                      CAST(ordered_at AS TIMESTAMP) AS ordered_at
               FROM demo_orders_feed;",
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

    section(out, "8. Who changed what: DESCRIBE HISTORY demo.orders")?;
    show(session, out, "DESCRIBE HISTORY demo.orders")
        .await
        .map(|_| ())?;
    writeln!(
        out,
        "Done. Explore it yourself: autolake --lake {} sql",
        session.engine().lake().uri()
    )?;
    Ok(())
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

/// The bundled files, written to a private temporary folder.
struct SampleFiles {
    dir: PathBuf,
    customers: PathBuf,
    orders: PathBuf,
}

impl SampleFiles {
    fn write() -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("autolake-demo-{}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::invalid(format!("cannot write the demo's sample files: {e}")))?;
        let customers = dir.join("customers.csv");
        let orders = dir.join("orders.json");
        std::fs::write(&customers, CUSTOMERS_CSV)?;
        std::fs::write(&orders, ORDERS_NDJSON)?;
        Ok(Self {
            dir,
            customers,
            orders,
        })
    }
}

impl Drop for SampleFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
