//! The AutoLake parser: DataFusion's parser for plain SQL, extended with the
//! statements a lake needs (`DESCRIBE HISTORY`, `RESTORE`, `OPTIMIZE`,
//! `VACUUM`).
//!
//! Like DataFusion's own `DFParser`, it drives one sqlparser [`Parser`]
//! over the token stream: for each statement it peeks at the leading words,
//! parses AutoLake's statements itself with the parser's primitives, and
//! otherwise lets `DFParser::parse_statement` continue on the same tokens.
//! That way every error, ours or DataFusion's, carries sqlparser's line and
//! column, which [`ParseError`] turns into a one-line message.

use datafusion::sql::parser::{DFParser, DFParserBuilder};
use datafusion::sql::sqlparser::tokenizer::{Location, Token};

use crate::dialect::AutoLakeDialect;
use crate::error::{ParseError, Result};
use crate::statement::{ParsedStatement, Statement};

/// Parses `sql`, one or more statements separated by `;`.
///
/// ```
/// let stmts = autolake_sql::parse("SELECT 1; VACUUM t RETAIN 0 HOURS").unwrap();
/// assert_eq!(stmts.len(), 2);
/// assert_eq!(stmts[1].statement.kind(), "VACUUM");
/// ```
pub fn parse(sql: &str) -> Result<Vec<ParsedStatement>> {
    let dialect = AutoLakeDialect::default();
    let mut parser = DFParserBuilder::new(sql)
        .with_dialect(&dialect)
        .build()
        .map_err(|e| ParseError::from_message(sql, &e.to_string(), None))?;
    let offsets = LineOffsets::new(sql);
    let mut out = Vec::new();
    loop {
        while parser.parser.consume_token(&Token::SemiColon) {}
        let first = parser.parser.peek_token();
        if first.token == Token::EOF {
            break;
        }
        let start = first.span.start;
        let mut statement = parse_one(&mut parser).map_err(|e| e.in_statement(sql, start))?;
        let next = parser.parser.peek_token();
        let end = match next.token {
            Token::EOF => sql.len(),
            Token::SemiColon => offsets.offset(next.span.start),
            _ => {
                return Err(ParseError::at(
                    sql,
                    next.span.start,
                    format!("expected ';' or end of input, found {}", next.token),
                ));
            }
        };
        let text = sql[offsets.offset(start)..end].trim().to_string();
        if let Statement::CreateJob(job) = &mut statement {
            let (line, column) = job.body_start;
            let body = offsets.offset(Location { line, column });
            job.body.text = sql[body..end].trim().to_string();
        }
        out.push(ParsedStatement {
            statement,
            text,
            line: start.line,
        });
    }
    Ok(out)
}

fn parse_one(df: &mut DFParser<'_>) -> Result<Statement> {
    let p = &mut df.parser;
    if let Some(g) = crate::governance::parse(p)? {
        return Ok(Statement::Governance(Box::new(g)));
    }
    // Each family of AutoLake statements recognises its own; whatever none
    // claims is DataFusion's SQL.
    for family in [
        crate::maintenance::parse,
        crate::drift::parse,
        crate::models::parse,
        crate::sources::parse,
        crate::pipelines::parse,
    ] {
        if let Some(statement) = family(&mut df.parser)? {
            return Ok(statement);
        }
    }
    if let Some(statement) = crate::jobs::parse(df, parse_one)? {
        return Ok(statement);
    }
    Ok(Statement::Sql(Box::new(df.parse_statement().map_err(
        |e| ParseError::from_message("", &e.to_string(), None),
    )?)))
}

/// Maps sqlparser's 1-based (line, column) locations to byte offsets.
struct LineOffsets<'a> {
    sql: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineOffsets<'a> {
    fn new(sql: &'a str) -> Self {
        let mut starts = vec![0];
        starts.extend(sql.match_indices('\n').map(|(i, _)| i + 1));
        Self { sql, starts }
    }

    fn offset(&self, loc: Location) -> usize {
        let Some(&line_start) = self.starts.get(loc.line.saturating_sub(1) as usize) else {
            return self.sql.len();
        };
        self.sql[line_start..]
            .char_indices()
            .nth(loc.column.saturating_sub(1) as usize)
            .map_or(self.sql.len(), |(i, _)| line_start + i)
    }
}

impl ParseError {
    fn at(_sql: &str, loc: Location, message: String) -> Self {
        ParseError {
            message,
            line: loc.line,
            column: loc.column,
            statement: None,
        }
    }

    /// Builds an error from a sqlparser/DataFusion message, taking the
    /// location from its `at Line: l, Column: c` suffix when present.
    pub(crate) fn from_message(_sql: &str, message: &str, fallback: Option<Location>) -> Self {
        let message = message
            .trim_start_matches("SQL error: ")
            .trim_start_matches("sql parser error: ")
            .trim_start_matches("ParserError(\"")
            .trim_start_matches("TokenizerError(\"")
            .trim_end_matches("\")");
        let (text, line, column) = match message.rfind(" at Line: ") {
            Some(i) => {
                let loc = &message[i + " at Line: ".len()..];
                let mut parts = loc.split(", Column: ");
                let line = parts.next().and_then(|l| l.trim().parse().ok());
                let column = parts.next().and_then(|c| {
                    c.trim_end_matches(|ch: char| !ch.is_ascii_digit())
                        .parse()
                        .ok()
                });
                match (line, column) {
                    (Some(l), Some(c)) => (&message[..i], l, c),
                    _ => (message, 0, 0),
                }
            }
            None => (message, 0, 0),
        };
        let (line, column) = match (line, fallback) {
            (0, Some(loc)) => (loc.line, loc.column),
            _ => (line, column),
        };
        ParseError {
            message: text.to_string(),
            line,
            column,
            statement: None,
        }
    }

    fn in_statement(mut self, sql: &str, start: Location) -> Self {
        if self.line == 0 {
            self.line = start.line;
            self.column = start.column;
        }
        let offsets = LineOffsets::new(sql);
        let begin = offsets.offset(start);
        let snippet: String = sql[begin..].chars().take(60).collect();
        let snippet = snippet.split(';').next().unwrap_or_default().trim();
        let mut snippet = snippet.split_whitespace().collect::<Vec<_>>().join(" ");
        // Source options hold secrets: never echo them.
        let upper = snippet.to_ascii_uppercase();
        if upper.starts_with("CREATE SOURCE")
            && let Some(i) = upper.find(" OPTIONS")
        {
            snippet = format!("{} OPTIONS (…)", &snippet[..i]);
        }
        self.statement = Some(snippet);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::statement::*;
    use datafusion::sql::parser::Statement as DF;
    use datafusion::sql::sqlparser::ast;

    fn one(sql: &str) -> Statement {
        let mut v = parse(sql).unwrap();
        assert_eq!(v.len(), 1, "{sql}");
        v.remove(0).statement
    }

    #[test]
    fn splits_statements_and_keeps_text() {
        let v = parse("SELECT 1;\n  INSERT INTO t VALUES (1);;\nVACUUM t").unwrap();
        let texts: Vec<_> = v.iter().map(|s| (s.text.as_str(), s.line)).collect();
        assert_eq!(
            texts,
            vec![
                ("SELECT 1", 1),
                ("INSERT INTO t VALUES (1)", 2),
                ("VACUUM t", 3)
            ]
        );
    }

    #[test]
    fn lake_statements() {
        let Statement::DescribeHistory(h) = one("DESCRIBE HISTORY s.t LIMIT 5") else {
            panic!()
        };
        assert_eq!(h.table.to_string(), "s.t");
        assert_eq!(h.limit, Some(5));
        let Statement::Restore(r) = one("RESTORE TABLE t TO VERSION AS OF 3") else {
            panic!()
        };
        assert_eq!(r.to, TimeTravel::Version(3));
        let Statement::Restore(r) = one("restore t to timestamp as of '2026-01-01T00:00:00Z'")
        else {
            panic!()
        };
        assert_eq!(r.to, TimeTravel::Timestamp("2026-01-01T00:00:00Z".into()));
        let Statement::Optimize(o) = one("OPTIMIZE t ZORDER BY (a, b)") else {
            panic!()
        };
        assert_eq!(o.zorder_by, vec!["a", "b"]);
        let Statement::Vacuum(v) = one("VACUUM t RETAIN 0 HOURS DRY RUN") else {
            panic!()
        };
        assert_eq!((v.retain_hours, v.dry_run), (Some(0.0), true));
    }

    #[test]
    fn describe_of_a_table_named_history_is_plain_describe() {
        assert_eq!(one("DESCRIBE history").kind(), "DESCRIBE");
    }

    #[test]
    fn time_travel_and_partitioning_parse() {
        let Statement::Sql(s) =
            one("SELECT * FROM t VERSION AS OF 2 JOIN u TIMESTAMP AS OF '2026-01-01' ON true")
        else {
            panic!()
        };
        assert!(s.to_string().contains("VERSION AS OF 2"), "{s}");
        let Statement::Sql(s) = one("CREATE TABLE t (a INT NOT NULL, b TEXT) PARTITIONED BY (b)")
        else {
            panic!()
        };
        let DF::Statement(s) = *s else { panic!() };
        let ast::Statement::CreateTable(c) = *s else {
            panic!()
        };
        assert!(matches!(
            c.hive_distribution,
            ast::HiveDistributionStyle::PARTITIONED { .. }
        ));
    }

    #[test]
    fn errors_carry_line_and_column() {
        let e = parse("SELECT 1;\nSELEC 2").unwrap_err();
        assert_eq!((e.line, e.column), (2, 1), "{e}");
        assert!(e.to_string().contains("line 2, column 1"), "{e}");
        let e = parse("VACUUM t RETAIN x HOURS").unwrap_err();
        assert_eq!((e.line, e.column), (1, 17), "{e}");
        assert!(e.to_string().contains("number of hours"), "{e}");
        let e = parse("RESTORE TABLE t TO 5").unwrap_err();
        assert!(e.to_string().contains("VERSION AS OF"), "{e}");
        let e = parse("SELECT 1 2").unwrap_err();
        assert_eq!(e.line, 1);
        assert!(e.column > 0, "{e}");
    }

    #[test]
    fn model_statements() {
        let Statement::CreateModel(m) = one("CREATE MODEL s.churn TYPE mlp_classifier \
             OPTIONS (target 'churned', epochs 20, learning_rate 0.01, hidden_layers '16,8', l2 -0) \
             AS SELECT * FROM t")
        else {
            panic!()
        };
        assert_eq!(m.name.to_string(), "s.churn");
        assert_eq!(m.model_type, "mlp_classifier");
        assert_eq!(m.options[0], ("target".into(), "churned".into()));
        assert_eq!(m.options[3], ("hidden_layers".into(), "16,8".into()));
        assert_eq!(m.options[4], ("l2".into(), "-0".into()));
        assert!(matches!(one("SHOW MODELS"), Statement::ShowModels));
        assert!(matches!(
            one("DESCRIBE MODEL m VERSION 2"),
            Statement::DescribeModel {
                version: Some(2),
                ..
            }
        ));
        // `DESCRIBE model` describes a table named model.
        assert!(matches!(one("DESCRIBE model"), Statement::Sql(_)));
        let Statement::AlterModelStage { stage, version, .. } =
            one("ALTER MODEL m SET STAGE 'production' VERSION 3")
        else {
            panic!()
        };
        assert_eq!((stage.as_str(), version), ("production", Some(3)));
        assert!(matches!(
            one("DROP MODEL IF EXISTS m VERSION 1"),
            Statement::DropModel {
                if_exists: true,
                version: Some(1),
                ..
            }
        ));
        assert!(matches!(
            one("EVALUATE MODEL m ON (SELECT * FROM t)"),
            Statement::EvaluateModel { version: None, .. }
        ));
        for (sql, message) in [
            ("CREATE MODEL m TYPE forest AS SELECT 1", "model type"),
            (
                "CREATE MODEL m TYPE kmeans OPTIONS (k) AS SELECT 1",
                "value for option k",
            ),
            (
                "CREATE MODEL m TYPE kmeans OPTIONS (k 2, k 3) AS SELECT 1",
                "only once",
            ),
            (
                "CREATE MODEL m TYPE kmeans AS DELETE FROM t",
                "SELECT query",
            ),
            ("ALTER MODEL m STAGE 'x'", "SET STAGE"),
            ("EVALUATE MODEL m (SELECT 1)", "ON"),
        ] {
            let e = parse(sql).unwrap_err();
            assert!(e.to_string().contains(message), "{sql}: {e}");
        }
    }

    #[test]
    fn source_and_sync_statements() {
        let Statement::CreateSource(c) = one(
            "CREATE SOURCE IF NOT EXISTS crm TYPE postgres OPTIONS (url 'postgres://u:p@h/db', pool 4, ssl true)",
        ) else {
            panic!("not CREATE SOURCE")
        };
        assert!(c.if_not_exists);
        assert_eq!(c.name.to_string(), "crm");
        assert_eq!(c.source_type, "postgres");
        assert_eq!(
            c.options,
            vec![
                ("url".to_string(), "postgres://u:p@h/db".to_string()),
                ("pool".to_string(), "4".to_string()),
                ("ssl".to_string(), "true".to_string()),
            ]
        );
        assert!(matches!(one("SHOW SOURCES"), Statement::ShowSources));
        assert!(matches!(
            one("DROP SOURCE IF EXISTS crm"),
            Statement::DropSource {
                if_exists: true,
                ..
            }
        ));
        let Statement::SyncTable(s) = one(
            "SYNC TABLE raw.customers FROM crm.public.customers KEY (id, region) INCREMENTAL ON updated_at",
        ) else {
            panic!("not SYNC TABLE")
        };
        assert_eq!(s.target.to_string(), "raw.customers");
        assert_eq!(s.from.to_string(), "crm.public.customers");
        assert_eq!(s.incremental_on.unwrap().value, "updated_at");
        assert_eq!(s.key.len(), 2);
        let Statement::SyncSource { source, schema } = one("SYNC SOURCE crm INTO SCHEMA lake.raw")
        else {
            panic!("not SYNC SOURCE")
        };
        assert_eq!(
            (source.to_string(), schema.to_string()),
            ("crm".into(), "lake.raw".into())
        );

        let parsed =
            parse("CREATE SOURCE s TYPE postgres OPTIONS (url 'postgres://u:pw@h/db')").unwrap();
        assert_eq!(
            parsed[0].display_text(),
            "CREATE SOURCE s TYPE postgres OPTIONS (url '***')"
        );
        let err = parse("CREATE SOURCE s TYPE postgres OPTIONS (url 'postgres://u:pw@h/db' junk)")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("pw@"), "{err}");
        assert!(
            err.contains("CREATE SOURCE s TYPE postgres OPTIONS (…)"),
            "{err}"
        );

        for (sql, message) in [
            (
                "CREATE SOURCE s TYPE oracle",
                "a source type (postgres, mysql, files, nats, mqtt)",
            ),
            (
                "CREATE SOURCE s TYPE files OPTIONS (a '1', a '2')",
                "option a only once",
            ),
            ("SYNC TABLE t crm.public.c", "expected FROM"),
            ("SYNC SOURCE crm raw", "expected INTO SCHEMA"),
        ] {
            let err = parse(sql).unwrap_err().to_string();
            assert!(err.contains(message), "{sql}: {err}");
        }
    }

    #[test]
    fn job_statements() {
        let sql = "CREATE JOB IF NOT EXISTS roll EVERY '1 second' \
                   WINDOW HOP (ts, '1 minute', INTERVAL '5 minutes') WATERMARK '10 seconds' \
                   LATE INTO late_clicks \
                   AS INSERT INTO out SELECT window_start, count(*) FROM table_changes('clicks') GROUP BY 1; SELECT 1";
        let parsed = parse(sql).unwrap();
        assert_eq!(parsed.len(), 2);
        let Statement::CreateJob(job) = &parsed[0].statement else {
            panic!("not a job: {:?}", parsed[0].statement)
        };
        assert!(job.if_not_exists);
        assert_eq!(job.schedule, Some(JobSchedule::Every("1 second".into())));
        let window = job.window.as_ref().unwrap();
        assert_eq!(window.column.value, "ts");
        assert_eq!(window.slide.as_deref(), Some("1 minute"));
        assert_eq!(window.size, "5 minutes");
        assert_eq!(job.watermark.as_deref(), Some("10 seconds"));
        assert_eq!(job.late_into.as_ref().unwrap().to_string(), "late_clicks");
        assert_eq!(job.body.statement.kind(), "INSERT");
        assert_eq!(
            job.body.text,
            "INSERT INTO out SELECT window_start, count(*) FROM table_changes('clicks') GROUP BY 1"
        );

        let Statement::CreateJob(job) =
            one("CREATE JOB nightly SCHEDULE '0 2 * * *' AS SYNC TABLE t FROM pg.public.t")
        else {
            panic!()
        };
        assert_eq!(job.schedule, Some(JobSchedule::Cron("0 2 * * *".into())));
        assert_eq!(job.body.text, "SYNC TABLE t FROM pg.public.t");

        assert!(matches!(
            one("ALTER JOB j PAUSE"),
            Statement::AlterJob { pause: true, .. }
        ));
        assert!(matches!(
            one("ALTER JOB j RESUME"),
            Statement::AlterJob { pause: false, .. }
        ));
        assert!(matches!(one("RUN JOB j"), Statement::RunJob(_)));
        assert!(matches!(
            one("DROP JOB IF EXISTS j"),
            Statement::DropJob {
                if_exists: true,
                ..
            }
        ));
        assert!(matches!(one("SHOW JOBS"), Statement::ShowJobs));
        assert!(matches!(one("show cluster"), Statement::ShowCluster));

        for (bad, message) in [
            (
                "CREATE JOB j AS INSERT INTO t SELECT 1",
                "SCHEDULE 'cron', EVERY 'interval' or AFTER",
            ),
            (
                "CREATE JOB j EVERY '1 minute' AS SELECT 1",
                "a job runs INSERT",
            ),
            (
                "CREATE JOB j EVERY '1 minute' WATERMARK '1 second' AS INSERT INTO t SELECT 1",
                "WINDOW before",
            ),
            (
                "CREATE JOB j EVERY 5 AS INSERT INTO t SELECT 1",
                "an interval",
            ),
            (
                "CREATE JOB j EVERY '1 minute' AS CREATE JOB k EVERY '1 minute' AS INSERT INTO t SELECT 1",
                "cannot create jobs",
            ),
            ("ALTER JOB j STOP", "PAUSE, RESUME"),
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains(message), "{bad}: {e}");
        }
    }

    #[test]
    fn drift_checks_and_monitors() {
        let Statement::CheckDrift(c) = one(
            "CHECK DRIFT ON s.t COLUMNS (a, \"B\") REFERENCE (VERSION AS OF 3) \
             USING ks THRESHOLD 0.01",
        ) else {
            panic!()
        };
        assert_eq!(c.table.to_string(), "s.t");
        assert_eq!(c.columns.len(), 2);
        assert!(matches!(
            c.reference,
            DriftReference::At(TimeTravel::Version(3))
        ));
        assert_eq!(c.test.as_deref(), Some("ks"));
        assert_eq!(c.threshold, Some(0.01));
        // The text form parses back to the same check.
        let Statement::CheckDrift(again) = one(&c.to_string()) else {
            panic!()
        };
        assert_eq!(again.to_string(), c.to_string());

        let Statement::CheckDrift(c) = one(
            "CHECK DRIFT ON t REFERENCE (SELECT * FROM t WHERE d < '2026-01-01') \
             CURRENT (SELECT * FROM t WHERE d >= '2026-01-01')",
        ) else {
            panic!()
        };
        assert!(matches!(c.reference, DriftReference::Query(_)));
        assert!(c.current.is_some() && c.test.is_none());

        let Statement::CreateMonitor(m) = one(
            "CREATE MONITOR IF NOT EXISTS m ON t REFERENCE (VERSION AS OF 0) SCHEDULE '@hourly'",
        ) else {
            panic!()
        };
        assert!(m.if_not_exists);
        assert_eq!(m.schedule, "@hourly");
        assert!(matches!(one("RUN MONITOR m"), Statement::RunMonitor(_)));
        assert!(matches!(
            one("DROP MONITOR IF EXISTS m"),
            Statement::DropMonitor {
                if_exists: true,
                ..
            }
        ));
        assert!(matches!(one("SHOW MONITORS"), Statement::ShowMonitors));

        for (sql, message) in [
            ("CHECK DRIFT ON t", "REFERENCE"),
            (
                "CHECK DRIFT ON t REFERENCE (VERSION AS OF 0) USING magic",
                "drift test",
            ),
            ("CHECK DRIFT ON t REFERENCE (DELETE FROM t)", "SELECT query"),
            ("CHECK DRIFT ON t REFERENCE (VERSION AS OF 0", "')'"),
            (
                "CREATE MONITOR m ON t REFERENCE (VERSION AS OF 0)",
                "SCHEDULE",
            ),
        ] {
            let e = parse(sql).unwrap_err();
            assert!(e.to_string().contains(message), "{sql}: {e}");
        }
    }

    #[test]
    fn templates_pipelines_and_the_model_lifecycle() {
        let parsed = parse(
            "CREATE OR REPLACE TEMPLATE feed (s IDENT, every INTERVAL DEFAULT '5 minutes', \
             note TEXT DEFAULT 'x''y') AS $$\nCREATE TABLE ${s}.t (x INT);\n$$; SHOW TEMPLATES",
        )
        .unwrap();
        let Statement::CreateTemplate(t) = &parsed[0].statement else {
            panic!("{:?}", parsed[0].statement)
        };
        assert!(t.or_replace);
        assert_eq!(t.params.len(), 3);
        assert_eq!(t.params[1].ty, ParamType::Interval);
        assert_eq!(t.params[2].default.as_deref(), Some("x'y"));
        assert_eq!(t.body, "\nCREATE TABLE ${s}.t (x INT);\n");
        assert!(matches!(parsed[1].statement, Statement::ShowTemplates));

        let Statement::CreatePipeline(p) = one(
            "CREATE PIPELINE p1 FROM TEMPLATE feed VERSION 2 WITH (s = sales, n = -3, note = 'a')",
        ) else {
            panic!()
        };
        assert_eq!(p.version, Some(2));
        assert_eq!(
            p.args,
            vec![
                ("s".to_string(), "sales".to_string()),
                ("n".to_string(), "-3".to_string()),
                ("note".to_string(), "a".to_string())
            ]
        );
        assert!(matches!(
            one("DROP PIPELINE IF EXISTS p1 PURGE"),
            Statement::DropPipeline {
                if_exists: true,
                purge: true,
                ..
            }
        ));
        assert!(matches!(one("SHOW PIPELINES"), Statement::ShowPipelines));

        let Statement::CreateJob(job) =
            one("CREATE JOB b AFTER a, c AS INSERT INTO o SELECT * FROM table_changes('x')")
        else {
            panic!()
        };
        assert!(job.schedule.is_none());
        assert_eq!(job.after.len(), 2);

        let Statement::CreateMonitor(m) = one(
            "CREATE MONITOR m ON t REFERENCE (VERSION AS OF 0) SCHEDULE '1 minute' \
             ON DRIFT RETRAIN MODEL churn PROMOTE WHEN accuracy >= 0.8",
        ) else {
            panic!()
        };
        let on = m.on_drift.unwrap();
        assert_eq!(on.model.to_string(), "churn");
        assert_eq!(on.gate, Some(("accuracy".into(), ">=".into(), 0.8)));

        assert!(matches!(
            one("REPRODUCE MODEL churn VERSION 3"),
            Statement::ReproduceModel {
                version: Some(3),
                ..
            }
        ));
        let Statement::AlterModelLogging { table, sample, .. } =
            one("ALTER MODEL churn SET LOGGING TO lake.s.log SAMPLE 0.5")
        else {
            panic!()
        };
        assert_eq!(table.unwrap().to_string(), "lake.s.log");
        assert_eq!(sample, 0.5);
        assert!(matches!(
            one("ALTER MODEL churn SET LOGGING OFF"),
            Statement::AlterModelLogging { table: None, .. }
        ));

        for (sql, message) in [
            (
                "CREATE TEMPLATE t (s NUMBER) AS $$ SELECT 1 $$",
                "IDENT, TEXT",
            ),
            (
                "CREATE TEMPLATE t (s INT DEFAULT 'x') AS $$ SELECT 1 $$",
                "parameter s is INT",
            ),
            (
                "CREATE TEMPLATE t (s INT, s TEXT) AS $$ SELECT 1 $$",
                "only once",
            ),
            ("CREATE TEMPLATE t () AS SELECT 1", "between $$"),
            ("CREATE PIPELINE p FROM t", "FROM TEMPLATE"),
            ("CREATE JOB j AS INSERT INTO a SELECT 1", "AFTER"),
            ("ALTER MODEL m SET LOGGING TO t SAMPLE 2", "(0, 1]"),
            (
                "CREATE MONITOR m ON t REFERENCE (VERSION AS OF 0) SCHEDULE '1 minute' ON DRIFT RETRAIN MODEL x PROMOTE WHEN auc = 1",
                "comparison",
            ),
        ] {
            let e = parse(sql).unwrap_err();
            assert!(e.to_string().contains(message), "{sql}: {e}");
        }
    }
}
