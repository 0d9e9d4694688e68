//! Helpers shared by the end-to-end tests.

use arrow::util::display::{ArrayFormatter, FormatOptions};
use autolake_engine::Session;

/// The rows of the last statement, one string per row, cells joined by `|`.
pub(crate) async fn rows(session: &Session, sql: &str) -> Vec<String> {
    let batches = session
        .execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let options = FormatOptions::default().with_null("NULL");
    let mut out = Vec::new();
    for batch in &batches {
        let formatters: Vec<_> = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
            .collect();
        for row in 0..batch.num_rows() {
            out.push(
                formatters
                    .iter()
                    .map(|f| f.value(row).to_string())
                    .collect::<Vec<_>>()
                    .join("|"),
            );
        }
    }
    out
}

pub(crate) async fn one(session: &Session, sql: &str) -> String {
    let mut r = rows(session, sql).await;
    assert_eq!(r.len(), 1, "{sql}: {r:?}");
    r.remove(0)
}
