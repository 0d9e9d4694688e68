//! The model lifecycle from the CLI: a version reproduced bit for bit
//! after new rows landed, and refused clearly once VACUUM removed its
//! data; a monitor's drift retraining a model that passes its gate and
//! one that does not.

use super::{count, failed, ok, sql};

/// 400 rows of a batch: `a` spread over [offset, offset + 1), labelled by
/// its upper half.
fn batch(n: i64, offset: f64) -> String {
    format!(
        "INSERT INTO points SELECT {n} AS batch, {offset} + (value % 100) / 100.0 AS a, \
         ((value * 37) % 101) / 101.0 AS b, {offset} + (value % 100) / 100.0 > {offset} + 0.5 AS label \
         FROM range(0, 400)"
    )
}

/// A lake with `points` holding the first batch.
fn points_lake() -> tempfile::TempDir {
    let lake = tempfile::tempdir().unwrap();
    ok(sql(
        lake.path(),
        &format!(
            "CREATE TABLE points (batch BIGINT, a DOUBLE, b DOUBLE, label BOOLEAN); {};",
            batch(1, 0.0)
        ),
    ));
    lake
}

#[test]
fn a_model_reproduces_bit_for_bit_until_its_data_is_vacuumed() {
    let dir = points_lake();
    let lake = dir.path();
    ok(sql(
        lake,
        "CREATE MODEL churn TYPE logistic_regression OPTIONS (target 'label', seed 7) \
         AS SELECT a, b, label FROM points; \
         CREATE MODEL spread TYPE linear_regression OPTIONS (target 'b', l2 0.1) \
         AS SELECT a, b FROM points WHERE batch = 1",
    ));
    // New rows land; the recorded version is still read.
    ok(sql(lake, &batch(2, 5.0)));
    let out = ok(sql(lake, "REPRODUCE MODEL churn VERSION 1; "));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "model,version,weights_identical,metric,recorded,reproduced,equal,table_versions"
    );
    assert!(lines.len() > 4, "{out}");
    for line in &lines[1..] {
        assert!(line.starts_with("churn,1,true,"), "{out}");
        assert!(line.ends_with(",true,public.points@1"), "{out}");
    }
    assert!(out.contains(",accuracy,"), "{out}");
    let out = ok(sql(lake, "REPRODUCE MODEL spread"));
    assert!(out.lines().skip(1).all(|l| l.contains(",true,")), "{out}");
    assert!(out.contains(",rmse,"), "{out}");

    // Rewrite the files and remove the old ones: the version's rows are
    // gone, and the statement says which.
    ok(sql(lake, "OPTIMIZE points; VACUUM points RETAIN 0 HOURS"));
    let e = failed(sql(lake, "REPRODUCE MODEL churn"), 1);
    assert!(
        e.contains("training data of model churn version 1: table public.points version 1 was vacuumed: its file"),
        "{e}"
    );
    assert!(
        e.contains("the rows it was trained on no longer exist"),
        "{e}"
    );
    let e = failed(sql(lake, "REPRODUCE MODEL nope"), 1);
    assert!(
        e.contains("model nope (models: churn, spread) does not exist"),
        "{e}"
    );
}

#[test]
fn drift_retrains_and_promotes_only_through_the_gate() {
    let dir = points_lake();
    let lake = dir.path();
    // The model learns from the newest batch.
    ok(sql(
        lake,
        "CREATE MODEL m TYPE logistic_regression OPTIONS (target 'label') \
         AS SELECT a, label FROM points WHERE batch = (SELECT max(batch) FROM points); \
         ALTER MODEL m SET STAGE 'production'",
    ));
    let e = failed(
        sql(
            lake,
            "CREATE MONITOR bad ON points COLUMNS (a) REFERENCE (VERSION AS OF 1) SCHEDULE '1 hour' \
             ON DRIFT RETRAIN MODEL m PROMOTE WHEN rmse <= 1",
        ),
        1,
    );
    assert!(
        e.contains("model m is a logistic_regression and reports accuracy"),
        "{e}"
    );
    ok(sql(
        lake,
        "CREATE MONITOR strict ON points COLUMNS (a) REFERENCE (VERSION AS OF 1) SCHEDULE '1 hour' \
         ON DRIFT RETRAIN MODEL m PROMOTE WHEN log_loss <= 0.000001; \
         CREATE MONITOR fair ON points COLUMNS (a) REFERENCE (VERSION AS OF 1) SCHEDULE '1 hour' \
         ON DRIFT RETRAIN MODEL m PROMOTE WHEN accuracy >= 0.8",
    ));
    assert_eq!(
        ok(sql(
            lake,
            "SELECT name, on_drift FROM system.monitors ORDER BY name"
        )),
        "name,on_drift\nfair,ON DRIFT RETRAIN MODEL m PROMOTE WHEN accuracy >= 0.8\n\
         strict,ON DRIFT RETRAIN MODEL m PROMOTE WHEN log_loss <= 0.000001\n"
    );
    // No drift yet: nothing is retrained.
    ok(sql(lake, "RUN MONITOR fair"));
    assert_eq!(count(lake, "SELECT count(*) FROM system.model_events"), 0);

    // The world moves: a new batch, shifted.
    ok(sql(lake, &batch(2, 5.0)));
    ok(sql(lake, "RUN MONITOR strict"));
    assert_eq!(
        ok(sql(
            lake,
            "SELECT version, event, monitor FROM system.model_events ORDER BY at"
        )),
        "version,event,monitor\n1,drift_detected,strict\n2,trained,strict\n2,evaluated,strict\n\
         2,refused,strict\n"
    );
    let reason = ok(sql(
        lake,
        "SELECT reason FROM system.model_events WHERE event = 'refused'",
    ));
    assert!(reason.contains("gate not met: log_loss"), "{reason}");
    assert!(reason.contains("is not <= 0.000001"), "{reason}");
    assert_eq!(
        ok(sql(
            lake,
            "SELECT version, stage FROM system.models ORDER BY version"
        )),
        "version,stage\n1,production\n2,none\n"
    );

    ok(sql(lake, "RUN MONITOR fair"));
    assert_eq!(
        ok(sql(
            lake,
            "SELECT version, event FROM system.model_events WHERE monitor = 'fair' ORDER BY at"
        )),
        "version,event\n1,drift_detected\n3,trained\n3,evaluated\n3,promoted\n"
    );
    let evaluated = ok(sql(
        lake,
        "SELECT reason FROM system.model_events WHERE monitor = 'fair' AND event = 'evaluated'",
    ));
    assert!(evaluated.contains("production version 1"), "{evaluated}");
    assert_eq!(
        ok(sql(
            lake,
            "SELECT version, stage FROM system.models ORDER BY version"
        )),
        "version,stage\n1,none\n2,none\n3,production\n"
    );
    // predict('m') now uses the promoted version, fit to the new batch.
    assert!(
        count(
            lake,
            "SELECT CAST(avg(CASE WHEN predict('m', a) = label THEN 1.0 ELSE 0.0 END) * 100 AS BIGINT) \
             FROM points WHERE batch = 2"
        ) >= 90
    );

    // Another process holds the retrain of m: this detection is skipped.
    std::fs::create_dir_all(lake.join("retrains")).unwrap();
    std::fs::write(
        lake.join("retrains/m.json"),
        format!(
            "{{\"holder\": \"elsewhere\", \"since\": \"{}\"}}",
            chrono::Utc::now().to_rfc3339()
        ),
    )
    .unwrap();
    ok(sql(lake, "RUN MONITOR fair"));
    let skipped = ok(sql(
        lake,
        "SELECT event, reason FROM system.model_events WHERE monitor = 'fair' ORDER BY at DESC LIMIT 1",
    ));
    assert!(
        skipped.contains("skipped,a retrain of model m is already running"),
        "{skipped}"
    );
    std::fs::remove_file(lake.join("retrains/m.json")).unwrap();

    // A retrain that fails (the newest batch has no labels) leaves
    // production as it was.
    ok(sql(
        lake,
        "INSERT INTO points SELECT 3, 9 + (value % 100) / 100.0, 0.5, CAST(NULL AS BOOLEAN) FROM range(0, 400)",
    ));
    ok(sql(lake, "RUN MONITOR fair"));
    let last = ok(sql(
        lake,
        "SELECT version, event, reason FROM system.model_events WHERE monitor = 'fair' \
         ORDER BY at DESC LIMIT 1",
    ));
    assert!(
        last.starts_with("version,event,reason\n,training_failed,"),
        "{last}"
    );
    assert!(last.contains("null"), "{last}");
    assert_eq!(
        ok(sql(
            lake,
            "SELECT version, stage FROM system.models ORDER BY version"
        )),
        "version,stage\n1,none\n2,none\n3,production\n"
    );
}

#[test]
fn queries_log_their_predictions_sampled_and_tied_to_the_query() {
    let dir = points_lake();
    let lake = dir.path();
    ok(sql(
        lake,
        "CREATE MODEL churn TYPE logistic_regression OPTIONS (target 'label') \
         AS SELECT a, b, label FROM points",
    ));
    let e = failed(
        sql(lake, "ALTER MODEL churn SET LOGGING TO lake.nowhere.log"),
        1,
    );
    assert!(e.contains("schema nowhere does not exist"), "{e}");
    let e = failed(sql(lake, "ALTER MODEL churn SET LOGGING TO points"), 1);
    assert!(
        e.contains("lacks the columns model, version, inputs"),
        "{e}"
    );
    ok(sql(
        lake,
        "ALTER MODEL churn SET LOGGING TO lake.public.churn_log",
    ));
    ok(sql(
        lake,
        "SELECT sum(CASE WHEN predict('churn', a, b) THEN 1 ELSE 0 END) AS positive FROM points",
    ));
    assert_eq!(count(lake, "SELECT count(*) FROM churn_log"), 400);
    // The rows name the model's version and the query that scored them.
    assert_eq!(
        ok(sql(
            lake,
            "SELECT DISTINCT l.model, l.version, a.kind FROM churn_log l \
             JOIN system.audit_log a ON a.query_id = l.query_id"
        )),
        "model,version,kind\nchurn,1,SELECT\n"
    );
    // Joined to ground truth later: how often production was right.
    let right = count(
        lake,
        "SELECT count(*) FROM churn_log l JOIN points p \
         ON l.inputs = '{\"a\":' || CAST(p.a AS TEXT) || ',\"b\":' || CAST(p.b AS TEXT) || '}' \
         WHERE CAST(l.output AS BOOLEAN) = p.label",
    );
    assert!(right > 300, "{right}");

    // A sample: the same rows each time.
    ok(sql(
        lake,
        "ALTER MODEL churn SET LOGGING TO lake.public.sampled SAMPLE 0.25",
    ));
    let scored = "SELECT count(predict('churn', a, b)) FROM points";
    ok(sql(lake, scored));
    let first = count(lake, "SELECT count(*) FROM sampled");
    assert!((60..140).contains(&first), "{first}");
    ok(sql(lake, scored));
    assert_eq!(count(lake, "SELECT count(*) FROM sampled"), 2 * first);
    assert_eq!(
        count(
            lake,
            "SELECT count(*) FROM (SELECT inputs FROM sampled GROUP BY inputs HAVING count(*) <> 2)"
        ),
        0
    );
    ok(sql(lake, "ALTER MODEL churn SET LOGGING OFF"));
    ok(sql(lake, scored));
    assert_eq!(count(lake, "SELECT count(*) FROM sampled"), 2 * first);
}
