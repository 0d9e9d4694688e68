//! Models trained through SQL against scikit-learn on the same data and
//! split (`tests/fixtures/ml`, made by `scripts/ml_fixtures.py`): accuracy
//! within 1 point for classifiers, R² within 0.01 for regressors, k-means
//! inertia within 2%. Also: the same seed trains the same model, and a new
//! process (a new engine on the lake) sees and runs registered models.

use std::path::Path;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::Float64Type;
use autolake_engine::{Engine, EngineConfig, Interface, Principal, Session};

fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/ml")
}

async fn session(lake: &Path) -> Session {
    let engine = Engine::open(EngineConfig::for_lake(lake.display().to_string()))
        .await
        .expect("lake opens");
    engine.session(Principal::local_admin(), Interface::Embedded)
}

fn metric(batches: &[RecordBatch], name: &str) -> f64 {
    let batch = &batches[0];
    let column = batch
        .column_by_name(name)
        .unwrap_or_else(|| panic!("no metric {name} in {:?}", batch.schema()));
    column.as_primitive::<Float64Type>().value(0)
}

/// (dataset, model type, features, options) → compared with
/// `expected.json`.
const CASES: [(&str, &str, &str, &str); 6] = [
    (
        "binary",
        "logistic_regression",
        "x1, x2, x3, region",
        "epochs 100, learning_rate 0.01",
    ),
    (
        "binary",
        "mlp_classifier",
        "x1, x2, x3, region",
        "hidden_layers '32,16', epochs 60, learning_rate 0.001, batch_size 200",
    ),
    (
        "multiclass",
        "logistic_regression",
        "x1, x2, x3, region",
        "epochs 100, learning_rate 0.01",
    ),
    (
        "multiclass",
        "mlp_classifier",
        "x1, x2, x3, region",
        "hidden_layers '32,16', epochs 200, learning_rate 0.001, batch_size 200",
    ),
    ("regression", "linear_regression", "x1, x2, x3, region", ""),
    (
        "regression",
        "mlp_regressor",
        "x1, x2, x3, region",
        "hidden_layers '32,16', epochs 300, learning_rate 0.001, batch_size 200",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_match_scikit_learn() {
    let expected: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("expected.json")).expect("expected.json"),
    )
    .expect("valid JSON");
    let lake = tempfile::tempdir().unwrap();
    let s = session(lake.path()).await;
    for name in ["binary", "multiclass", "regression", "clusters"] {
        s.execute(&format!(
            "CREATE EXTERNAL TABLE {name} STORED AS CSV LOCATION '{}' OPTIONS ('format.has_header' 'true')",
            fixtures().join(format!("{name}.csv")).display()
        ))
        .await
        .unwrap();
    }
    let mut report = Vec::new();
    let mut failures = Vec::new();
    for (data, kind, features, options) in CASES {
        let reference = &expected[data][kind];
        let target = reference["target"].as_str().unwrap();
        let model = format!("{data}_{kind}");
        let options = if options.is_empty() {
            String::new()
        } else {
            format!(", {options}")
        };
        s.execute(&format!(
            "CREATE MODEL {model} TYPE {kind} OPTIONS (target '{target}', validation_split 0, seed 1{options}) \
             AS SELECT {features}, {target} FROM {data} WHERE split = 'train'"
        ))
        .await
        .unwrap_or_else(|e| panic!("{model}: {e}"));
        let metrics = s
            .execute(&format!(
                "EVALUATE MODEL {model} ON (SELECT {features}, {target} FROM {data} WHERE split = 'test')"
            ))
            .await
            .unwrap();
        let (name, tolerance) = if kind.ends_with("regressor") || kind == "linear_regression" {
            ("r2", 0.01)
        } else {
            ("accuracy", 0.01)
        };
        let ours = metric(&metrics, name);
        let theirs = reference[name].as_f64().unwrap();
        report.push(format!(
            "{model}: {name} {ours:.4} vs scikit-learn {theirs:.4}"
        ));
        if (ours - theirs).abs() > tolerance {
            failures.push(report.last().unwrap().clone());
        }
    }
    // k-means: inertia over all rows, standardised as scikit-learn's
    // StandardScaler does.
    s.execute(
        "CREATE MODEL blobs TYPE kmeans OPTIONS (k 4, n_init 10, validation_split 0, seed 3) \
         AS SELECT a, b, c FROM clusters",
    )
    .await
    .unwrap();
    let metrics = s
        .execute("EVALUATE MODEL blobs ON (SELECT a, b, c FROM clusters)")
        .await
        .unwrap();
    let ours = metric(&metrics, "inertia");
    let theirs = expected["clusters"]["kmeans"]["inertia"].as_f64().unwrap();
    report.push(format!(
        "kmeans: inertia {ours:.2} vs scikit-learn {theirs:.2}"
    ));
    if (ours / theirs - 1.0).abs() > 0.02 {
        failures.push(report.last().unwrap().clone());
    }
    println!("{}", report.join("\n"));
    assert!(
        failures.is_empty(),
        "outside tolerance:\n{}",
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_seed_same_model_and_other_processes_see_it() {
    let lake = tempfile::tempdir().unwrap();
    let s = session(lake.path()).await;
    s.execute(&format!(
        "CREATE EXTERNAL TABLE binary STORED AS CSV LOCATION '{}' OPTIONS ('format.has_header' 'true')",
        fixtures().join("binary.csv").display()
    ))
    .await
    .unwrap();
    for _ in 0..2 {
        s.execute(
            "CREATE MODEL m TYPE mlp_classifier OPTIONS (target 'churned', hidden_layers '8', epochs 3, seed 5) \
             AS SELECT x1, x2, x3, region, churned FROM binary",
        )
        .await
        .unwrap();
    }
    let probabilities = |sql: &'static str| {
        let s = &s;
        async move {
            let batches = s.execute(sql).await.unwrap();
            batches
                .iter()
                .flat_map(|b| b.column(0).as_primitive::<Float64Type>().values().to_vec())
                .collect::<Vec<f64>>()
        }
    };
    let v1 = probabilities("SELECT predict_proba('m@1', x1, x2, x3, region) FROM binary").await;
    let v2 = probabilities("SELECT predict_proba('m@2', x1, x2, x3, region) FROM binary").await;
    assert_eq!(v1.len(), 3000);
    assert_eq!(v1, v2, "the same seed trains the same weights");

    // Another engine on the same lake: registry, stages and predict.
    s.execute("ALTER MODEL m SET STAGE 'production' VERSION 1")
        .await
        .unwrap();
    let other = session(lake.path()).await;
    other
        .execute(&format!(
            "CREATE EXTERNAL TABLE binary STORED AS CSV LOCATION '{}' OPTIONS ('format.has_header' 'true')",
            fixtures().join("binary.csv").display()
        ))
        .await
        .unwrap();
    let rows = other
        .execute("SELECT version, stage FROM system.models WHERE name = 'm' ORDER BY version")
        .await
        .unwrap();
    let stages = rows[0].column(1).as_string::<i32>();
    assert_eq!((stages.value(0), stages.value(1)), ("production", "none"));
    let labels = other
        .execute("SELECT predict('m', x1, x2, x3, region) AS p FROM binary LIMIT 3")
        .await
        .unwrap();
    let labels = labels[0].column(0).as_string::<i32>();
    assert!(labels.iter().all(|l| matches!(l, Some("yes" | "no"))));
    // A stage change in one engine reaches the other's next statement.
    s.execute("ALTER MODEL m SET STAGE 'production' VERSION 2")
        .await
        .unwrap();
    let rows = other
        .execute("SELECT version FROM system.models WHERE name = 'm' AND stage = 'production'")
        .await
        .unwrap();
    assert_eq!(
        rows[0]
            .column(0)
            .as_primitive::<arrow::datatypes::Int64Type>()
            .value(0),
        2
    );
    assert!(rows[0].column(0).null_count() == 0);
}
