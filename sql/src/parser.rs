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
use datafusion::sql::sqlparser::ast::{self, Expr, ObjectName, Value};
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::{Location, Token};

use crate::dialect::AutoLakeDialect;
use crate::statement::{
    CreateJob, CreateModel, CreateMonitor, CreateSource, DRIFT_TESTS, DescribeHistory, DriftCheck,
    DriftReference, JOB_STATEMENTS, JobSchedule, MODEL_TYPES, Optimize, ParsedStatement, Restore,
    SOURCE_TYPES, Statement, SyncTable, TimeTravel, Vacuum, WindowSpec,
};
use crate::{ParseError, Result};

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
    match (word(p, 0).as_deref(), word(p, 1).as_deref()) {
        (Some("DESCRIBE" | "DESC"), Some("HISTORY")) if !ends_after(p, 2) => {
            p.next_token();
            p.next_token();
            parse_describe_history(p)
        }
        (Some("RESTORE"), _) => {
            p.next_token();
            parse_restore(p)
        }
        (Some("OPTIMIZE"), _) => {
            p.next_token();
            parse_optimize(p)
        }
        (Some("VACUUM"), _) => {
            p.next_token();
            parse_vacuum(p)
        }
        (Some("CHECK"), Some("DRIFT")) => {
            p.next_token();
            p.next_token();
            Ok(Statement::CheckDrift(parse_drift_check(p)?))
        }
        (Some("CREATE"), Some("MONITOR")) => {
            p.next_token();
            p.next_token();
            parse_create_monitor(p)
        }
        (Some("RUN"), Some("MONITOR")) => {
            p.next_token();
            p.next_token();
            Ok(Statement::RunMonitor(parse_object_name(
                p,
                "a monitor name",
            )?))
        }
        (Some("DROP"), Some("MONITOR")) => {
            p.next_token();
            p.next_token();
            let if_exists = eat_words(p, &["IF", "EXISTS"]);
            let name = parse_object_name(p, "a monitor name")?;
            Ok(Statement::DropMonitor { name, if_exists })
        }
        (Some("SHOW"), Some("MONITORS")) if ends_after(p, 2) => {
            p.next_token();
            p.next_token();
            Ok(Statement::ShowMonitors)
        }
        (Some("CREATE"), Some("MODEL")) => {
            p.next_token();
            p.next_token();
            parse_create_model(p)
        }
        (Some("CREATE"), Some("JOB")) => {
            df.parser.next_token();
            df.parser.next_token();
            parse_create_job(df)
        }
        (Some("ALTER"), Some("JOB")) => {
            p.next_token();
            p.next_token();
            let name = parse_object_name(p, "a job name")?;
            let pause = if eat_word(p, "PAUSE") {
                true
            } else if eat_word(p, "RESUME") {
                false
            } else {
                return Err(expected(p, "PAUSE, RESUME or OWNER TO"));
            };
            Ok(Statement::AlterJob { name, pause })
        }
        (Some("RUN"), Some("JOB")) => {
            p.next_token();
            p.next_token();
            Ok(Statement::RunJob(parse_object_name(p, "a job name")?))
        }
        (Some("DROP"), Some("JOB")) => {
            p.next_token();
            p.next_token();
            let if_exists = eat_words(p, &["IF", "EXISTS"]);
            let name = parse_object_name(p, "a job name")?;
            Ok(Statement::DropJob { name, if_exists })
        }
        (Some("SHOW"), Some("JOBS")) if ends_after(p, 2) => {
            p.next_token();
            p.next_token();
            Ok(Statement::ShowJobs)
        }
        (Some("SHOW"), Some("MODELS")) if ends_after(p, 2) => {
            p.next_token();
            p.next_token();
            Ok(Statement::ShowModels)
        }
        (Some("DESCRIBE" | "DESC"), Some("MODEL")) if !ends_after(p, 2) => {
            p.next_token();
            p.next_token();
            let name = parse_object_name(p, "a model name")?;
            let version = parse_model_version(p)?;
            Ok(Statement::DescribeModel { name, version })
        }
        (Some("ALTER"), Some("MODEL")) => {
            p.next_token();
            p.next_token();
            let name = parse_object_name(p, "a model name")?;
            if !eat_words(p, &["SET", "STAGE"]) {
                return Err(expected(p, "SET STAGE 'stage'"));
            }
            let stage = parse_string(
                p,
                "a stage string ('production', 'staging', 'archived' or 'none')",
            )?;
            let version = parse_model_version(p)?;
            Ok(Statement::AlterModelStage {
                name,
                stage,
                version,
            })
        }
        (Some("DROP"), Some("MODEL")) => {
            p.next_token();
            p.next_token();
            let if_exists = eat_words(p, &["IF", "EXISTS"]);
            let name = parse_object_name(p, "a model name")?;
            let version = parse_model_version(p)?;
            Ok(Statement::DropModel {
                name,
                version,
                if_exists,
            })
        }
        (Some("EVALUATE"), Some("MODEL")) => {
            p.next_token();
            p.next_token();
            let name = parse_object_name(p, "a model name")?;
            let version = parse_model_version(p)?;
            expect_word(p, "ON")?;
            expect_token(p, &Token::LParen, "'(' before the evaluation query")?;
            let query = parse_select(p, "a SELECT query with the evaluation rows")?;
            expect_token(p, &Token::RParen, "')' after the evaluation query")?;
            Ok(Statement::EvaluateModel {
                name,
                version,
                query,
            })
        }
        (Some("CREATE"), Some("SOURCE")) => {
            p.next_token();
            p.next_token();
            parse_create_source(p)
        }
        (Some("SHOW"), Some("SOURCES")) if ends_after(p, 2) => {
            p.next_token();
            p.next_token();
            Ok(Statement::ShowSources)
        }
        (Some("DROP"), Some("SOURCE")) => {
            p.next_token();
            p.next_token();
            let if_exists = eat_words(p, &["IF", "EXISTS"]);
            let name = parse_object_name(p, "a source name")?;
            Ok(Statement::DropSource { name, if_exists })
        }
        (Some("SYNC"), Some("TABLE")) => {
            p.next_token();
            p.next_token();
            parse_sync_table(p)
        }
        (Some("SYNC"), Some("SOURCE")) => {
            p.next_token();
            p.next_token();
            let source = parse_object_name(p, "a source name")?;
            if !eat_words(p, &["INTO", "SCHEMA"]) {
                return Err(expected(p, "INTO SCHEMA"));
            }
            let schema = parse_object_name(p, "a lake schema name")?;
            Ok(Statement::SyncSource { source, schema })
        }
        _ => Ok(Statement::Sql(Box::new(df.parse_statement().map_err(
            |e| ParseError::from_message("", &e.to_string(), None),
        )?))),
    }
}

/// `DESCRIBE HISTORY t [LIMIT n]`, after `DESCRIBE HISTORY`.
fn parse_describe_history(p: &mut Parser<'_>) -> Result<Statement> {
    let table = parse_table_name(p)?;
    let limit = if eat_word(p, "LIMIT") {
        Some(parse_unsigned(p, "a row count after LIMIT")? as usize)
    } else {
        None
    };
    Ok(Statement::DescribeHistory(DescribeHistory { table, limit }))
}

/// `[TABLE] t TO VERSION AS OF n | TIMESTAMP AS OF 'ts'`, after `RESTORE`.
fn parse_restore(p: &mut Parser<'_>) -> Result<Statement> {
    eat_word(p, "TABLE");
    let table = parse_table_name(p)?;
    expect_word(p, "TO")?;
    let to = if eat_words(p, &["VERSION", "AS", "OF"]) {
        TimeTravel::Version(parse_unsigned(p, "a version number")? as i64)
    } else if eat_words(p, &["TIMESTAMP", "AS", "OF"]) {
        TimeTravel::Timestamp(parse_string(p, "a timestamp string")?)
    } else {
        return Err(expected(
            p,
            "VERSION AS OF n or TIMESTAMP AS OF 'timestamp'",
        ));
    };
    Ok(Statement::Restore(Restore { table, to }))
}

/// `[TABLE] t [ZORDER BY (c, …)]`, after `OPTIMIZE`.
fn parse_optimize(p: &mut Parser<'_>) -> Result<Statement> {
    eat_word(p, "TABLE");
    let table = parse_table_name(p)?;
    let mut zorder_by = Vec::new();
    if eat_words(p, &["ZORDER", "BY"]) {
        let parens = p.consume_token(&Token::LParen);
        loop {
            let ident = p.parse_identifier().map_err(|e| sql_error(p, e))?;
            zorder_by.push(ident.value);
            if !p.consume_token(&Token::Comma) {
                break;
            }
        }
        if parens && !p.consume_token(&Token::RParen) {
            return Err(expected(p, "')' after the ZORDER BY columns"));
        }
    }
    Ok(Statement::Optimize(Optimize { table, zorder_by }))
}

/// `[TABLE] t [RETAIN n HOURS] [DRY RUN]`, after `VACUUM`.
fn parse_vacuum(p: &mut Parser<'_>) -> Result<Statement> {
    eat_word(p, "TABLE");
    let table = parse_table_name(p)?;
    let mut retain_hours = None;
    let mut dry_run = false;
    loop {
        if eat_word(p, "RETAIN") {
            let hours = parse_number(p, "a number of hours after RETAIN")?;
            if !(eat_word(p, "HOURS") || eat_word(p, "HOUR")) {
                return Err(expected(p, "HOURS after the retention"));
            }
            retain_hours = Some(hours);
        } else if eat_words(p, &["DRY", "RUN"]) {
            dry_run = true;
        } else {
            break;
        }
    }
    Ok(Statement::Vacuum(Vacuum {
        table,
        retain_hours,
        dry_run,
    }))
}

/// `ON t [COLUMNS (a, …)] REFERENCE (…) [CURRENT (…)] [USING test]
/// [THRESHOLD x]`, after `CHECK DRIFT`; clauses after the table in any
/// order.
fn parse_drift_check(p: &mut Parser<'_>) -> Result<DriftCheck> {
    expect_word(p, "ON")?;
    let table = parse_table_name(p)?;
    let mut check = DriftCheck {
        table,
        columns: Vec::new(),
        reference: DriftReference::At(TimeTravel::Version(0)),
        current: None,
        test: None,
        threshold: None,
    };
    let mut reference = false;
    loop {
        let clause = word(p, 0);
        match clause.as_deref() {
            Some("COLUMNS") if check.columns.is_empty() => {
                p.next_token();
                expect_token(p, &Token::LParen, "'(' before the column list")?;
                loop {
                    check
                        .columns
                        .push(p.parse_identifier().map_err(|e| sql_error(p, e))?);
                    if !p.consume_token(&Token::Comma) {
                        break;
                    }
                }
                expect_token(p, &Token::RParen, "')' after the column list")?;
            }
            Some("REFERENCE") if !reference => {
                p.next_token();
                expect_token(p, &Token::LParen, "'(' after REFERENCE")?;
                check.reference = if eat_words(p, &["VERSION", "AS", "OF"]) {
                    DriftReference::At(TimeTravel::Version(
                        parse_unsigned(p, "a version number")? as i64
                    ))
                } else if eat_words(p, &["TIMESTAMP", "AS", "OF"]) {
                    DriftReference::At(TimeTravel::Timestamp(parse_string(
                        p,
                        "a timestamp string",
                    )?))
                } else if matches!(word(p, 0).as_deref(), Some("SELECT" | "WITH" | "VALUES")) {
                    DriftReference::Query(p.parse_query().map_err(|e| sql_error(p, e))?)
                } else {
                    return Err(expected(
                        p,
                        "VERSION AS OF n, TIMESTAMP AS OF 'timestamp' or a SELECT query",
                    ));
                };
                expect_token(p, &Token::RParen, "')' after the reference")?;
                reference = true;
            }
            Some("CURRENT") if check.current.is_none() => {
                p.next_token();
                expect_token(p, &Token::LParen, "'(' after CURRENT")?;
                if !matches!(word(p, 0).as_deref(), Some("SELECT" | "WITH" | "VALUES")) {
                    return Err(expected(p, "a SELECT query for the current sample"));
                }
                check.current = Some(p.parse_query().map_err(|e| sql_error(p, e))?);
                expect_token(p, &Token::RParen, "')' after the current query")?;
            }
            Some("USING") if check.test.is_none() => {
                p.next_token();
                let test = word(p, 0).map(|w| w.to_lowercase());
                match test {
                    Some(t) if DRIFT_TESTS.contains(&t.as_str()) => {
                        p.next_token();
                        check.test = Some(t);
                    }
                    _ => {
                        return Err(expected(
                            p,
                            &format!("a drift test ({})", DRIFT_TESTS.join(", ")),
                        ));
                    }
                }
            }
            Some("THRESHOLD") if check.threshold.is_none() => {
                p.next_token();
                check.threshold = Some(parse_number(p, "a non-negative threshold")?);
            }
            _ => break,
        }
    }
    if !reference {
        return Err(expected(p, "REFERENCE (…)"));
    }
    Ok(check)
}

/// `[IF NOT EXISTS] name ON t … SCHEDULE '…'`, after `CREATE MONITOR`.
fn parse_create_monitor(p: &mut Parser<'_>) -> Result<Statement> {
    let if_not_exists = eat_words(p, &["IF", "NOT", "EXISTS"]);
    let name = parse_object_name(p, "a monitor name")?;
    let check = parse_drift_check(p)?;
    if !eat_word(p, "SCHEDULE") {
        return Err(expected(p, "SCHEDULE 'cron or interval'"));
    }
    let schedule = parse_string(p, "a schedule string")?;
    Ok(Statement::CreateMonitor(CreateMonitor {
        name,
        if_not_exists,
        check,
        schedule,
    }))
}

/// `[IF NOT EXISTS] name SCHEDULE '…' | EVERY '…' [WINDOW …] [WATERMARK '…']
/// [LATE INTO t] AS statement`, after `CREATE JOB`.
fn parse_create_job(df: &mut DFParser<'_>) -> Result<Statement> {
    let p = &mut df.parser;
    let if_not_exists = eat_words(p, &["IF", "NOT", "EXISTS"]);
    let name = parse_object_name(p, "a job name")?;
    let schedule = if eat_word(p, "SCHEDULE") {
        JobSchedule::Cron(parse_string(
            p,
            "a cron schedule string such as '*/5 * * * *'",
        )?)
    } else if eat_word(p, "EVERY") {
        JobSchedule::Every(parse_interval(p)?)
    } else {
        return Err(expected(p, "SCHEDULE 'cron' or EVERY 'interval'"));
    };
    let mut window = None;
    let mut watermark = None;
    let mut late_into = None;
    loop {
        if window.is_none() && eat_word(p, "WINDOW") {
            let hop = if eat_word(p, "TUMBLE") {
                false
            } else if eat_word(p, "HOP") {
                true
            } else {
                return Err(expected(
                    p,
                    "TUMBLE (column, 'size') or HOP (column, 'slide', 'size')",
                ));
            };
            expect_token(p, &Token::LParen, "'(' after the window kind")?;
            let column = p
                .parse_identifier()
                .map_err(|_| expected(p, "the event-time column"))?;
            expect_token(p, &Token::Comma, "',' after the event-time column")?;
            let first = parse_interval(p)?;
            let (size, slide) = if hop {
                expect_token(p, &Token::Comma, "',' and the window size after the slide")?;
                (parse_interval(p)?, Some(first))
            } else {
                (first, None)
            };
            expect_token(p, &Token::RParen, "')' after the window")?;
            window = Some(WindowSpec {
                column,
                size,
                slide,
            });
        } else if watermark.is_none() && eat_word(p, "WATERMARK") {
            watermark = Some(parse_interval(p)?);
        } else if late_into.is_none() && eat_words(p, &["LATE", "INTO"]) {
            late_into = Some(parse_table_name(p)?);
        } else {
            break;
        }
    }
    if window.is_none() && (watermark.is_some() || late_into.is_some()) {
        return Err(expected(p, "WINDOW before WATERMARK or LATE INTO"));
    }
    expect_word(p, "AS")?;
    let first = p.peek_token();
    let body_start = (first.span.start.line, first.span.start.column);
    let line = first.span.start.line;
    if matches!(word(p, 0).as_deref(), Some("CREATE"))
        && matches!(word(p, 1).as_deref(), Some("JOB"))
    {
        return Err(expected(
            p,
            "the statement the job runs (a job cannot create jobs)",
        ));
    }
    let body = parse_one(df)?;
    let kind = body.kind();
    if !JOB_STATEMENTS.contains(&kind) {
        return Err(ParseError {
            message: format!("a job runs {}; found {kind}", JOB_STATEMENTS.join(", ")),
            line: body_start.0,
            column: body_start.1,
            statement: None,
        });
    }
    Ok(Statement::CreateJob(Box::new(CreateJob {
        name,
        if_not_exists,
        schedule,
        window,
        watermark,
        late_into,
        body: Box::new(ParsedStatement {
            statement: body,
            text: String::new(),
            line,
        }),
        body_start,
    })))
}

/// An interval: `'5 minutes'` or `INTERVAL '5 minutes'`.
fn parse_interval(p: &mut Parser<'_>) -> Result<String> {
    let what = "an interval such as '1 minute'";
    match p.parse_expr() {
        Ok(Expr::Value(v)) => match v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => Ok(s),
            _ => Err(expected(p, what)),
        },
        Ok(Expr::Interval(i)) => match *i.value {
            Expr::Value(v) => match v.value {
                Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => {
                    match &i.leading_field {
                        Some(unit) => Ok(format!("{s} {unit}")),
                        None => Ok(s),
                    }
                }
                _ => Err(expected(p, what)),
            },
            _ => Err(expected(p, what)),
        },
        Ok(_) => Err(expected(p, what)),
        Err(e) => Err(sql_error(p, e)),
    }
}

/// `[VERSION n]`
fn parse_model_version(p: &mut Parser<'_>) -> Result<Option<u64>> {
    if eat_word(p, "VERSION") {
        Ok(Some(parse_unsigned(p, "a version number")?))
    } else {
        Ok(None)
    }
}

/// A `SELECT`/`WITH`/`VALUES` query.
fn parse_select(p: &mut Parser<'_>, what: &str) -> Result<Box<ast::Query>> {
    if !matches!(word(p, 0).as_deref(), Some("SELECT" | "WITH" | "VALUES")) {
        return Err(expected(p, what));
    }
    p.parse_query().map_err(|e| sql_error(p, e))
}

/// `name TYPE t [OPTIONS (key value, …)] AS SELECT …`, after `CREATE MODEL`.
fn parse_create_model(p: &mut Parser<'_>) -> Result<Statement> {
    let name = parse_object_name(p, "a model name")?;
    expect_word(p, "TYPE")?;
    let model_type = match word(p, 0).map(|w| w.to_lowercase()) {
        Some(t) if MODEL_TYPES.contains(&t.as_str()) => {
            p.next_token();
            t
        }
        _ => {
            return Err(expected(
                p,
                &format!("a model type ({})", MODEL_TYPES.join(", ")),
            ));
        }
    };
    let options = if eat_word(p, "OPTIONS") {
        parse_options(p)?
    } else {
        Vec::new()
    };
    expect_word(p, "AS")?;
    let query = parse_select(p, "a SELECT query with the training rows")?;
    Ok(Statement::CreateModel(CreateModel {
        name,
        model_type,
        options,
        query,
    }))
}

/// `(key value, …)` after `OPTIONS`: lower-case keys, each once; values
/// are strings, numbers or the words `true`/`false`.
fn parse_options(p: &mut Parser<'_>) -> Result<Vec<(String, String)>> {
    let mut options = Vec::new();
    expect_token(p, &Token::LParen, "'(' after OPTIONS")?;
    if p.consume_token(&Token::RParen) {
        return Ok(options);
    }
    loop {
        let key = match p.peek_token().token {
            Token::Word(w) => w.value.to_lowercase(),
            _ => return Err(expected(p, "an option name")),
        };
        p.next_token();
        if options.iter().any(|(k, _): &(String, String)| *k == key) {
            return Err(expected(p, &format!("option {key} only once")));
        }
        let value = match p.peek_token().token {
            Token::SingleQuotedString(s) | Token::DoubleQuotedString(s) => s,
            Token::Number(n, _) => n,
            Token::Word(w)
                if w.quote_style.is_none()
                    && matches!(w.value.to_lowercase().as_str(), "true" | "false") =>
            {
                w.value.to_lowercase()
            }
            Token::Minus => {
                p.next_token();
                match p.peek_token().token {
                    Token::Number(n, _) => format!("-{n}"),
                    _ => return Err(expected(p, "a number")),
                }
            }
            _ => return Err(expected(p, &format!("a value for option {key}"))),
        };
        p.next_token();
        options.push((key, value));
        if !p.consume_token(&Token::Comma) {
            break;
        }
    }
    expect_token(p, &Token::RParen, "')' after the options")?;
    Ok(options)
}

/// `[IF NOT EXISTS] name TYPE t OPTIONS (…)`, after `CREATE SOURCE`.
fn parse_create_source(p: &mut Parser<'_>) -> Result<Statement> {
    let if_not_exists = eat_words(p, &["IF", "NOT", "EXISTS"]);
    let name = parse_object_name(p, "a source name")?;
    expect_word(p, "TYPE")?;
    let source_type = match word(p, 0).map(|w| w.to_lowercase()) {
        Some(t) if SOURCE_TYPES.contains(&t.as_str()) => {
            p.next_token();
            t
        }
        _ => {
            return Err(expected(
                p,
                &format!("a source type ({})", SOURCE_TYPES.join(", ")),
            ));
        }
    };
    let options = if eat_word(p, "OPTIONS") {
        parse_options(p)?
    } else {
        Vec::new()
    };
    Ok(Statement::CreateSource(CreateSource {
        name,
        if_not_exists,
        source_type,
        options,
    }))
}

/// `t FROM src.schema.table [INCREMENTAL ON col] [KEY (c, …)]`, after
/// `SYNC TABLE`.
fn parse_sync_table(p: &mut Parser<'_>) -> Result<Statement> {
    let target = parse_table_name(p)?;
    expect_word(p, "FROM")?;
    let from = parse_object_name(p, "a source table (source.schema.table)")?;
    let mut sync = SyncTable {
        target,
        from,
        incremental_on: None,
        key: Vec::new(),
    };
    loop {
        if sync.incremental_on.is_none() && eat_words(p, &["INCREMENTAL", "ON"]) {
            sync.incremental_on = Some(p.parse_identifier().map_err(|e| sql_error(p, e))?);
        } else if sync.key.is_empty() && eat_word(p, "KEY") {
            expect_token(p, &Token::LParen, "'(' before the key columns")?;
            loop {
                sync.key
                    .push(p.parse_identifier().map_err(|e| sql_error(p, e))?);
                if !p.consume_token(&Token::Comma) {
                    break;
                }
            }
            expect_token(p, &Token::RParen, "')' after the key columns")?;
        } else {
            break;
        }
    }
    Ok(Statement::SyncTable(sync))
}

pub(crate) fn expect_token(p: &mut Parser<'_>, token: &Token, what: &str) -> Result<()> {
    if p.consume_token(token) {
        Ok(())
    } else {
        Err(expected(p, what))
    }
}

fn parse_table_name(p: &mut Parser<'_>) -> Result<ObjectName> {
    parse_object_name(p, "a table name")
}

pub(crate) fn parse_object_name(p: &mut Parser<'_>, what: &str) -> Result<ObjectName> {
    if !matches!(p.peek_token().token, Token::Word(_)) {
        return Err(expected(p, what));
    }
    p.parse_object_name(false).map_err(|e| sql_error(p, e))
}

fn parse_unsigned(p: &mut Parser<'_>, what: &str) -> Result<u64> {
    let token = p.peek_token();
    if let Token::Number(n, _) = &token.token
        && let Ok(v) = n.parse::<u64>()
    {
        p.next_token();
        return Ok(v);
    }
    Err(expected(p, what))
}

fn parse_number(p: &mut Parser<'_>, what: &str) -> Result<f64> {
    let token = p.peek_token();
    if let Token::Number(n, _) = &token.token
        && let Ok(v) = n.parse::<f64>()
        && v >= 0.0
    {
        p.next_token();
        return Ok(v);
    }
    Err(expected(p, what))
}

pub(crate) fn parse_string(p: &mut Parser<'_>, what: &str) -> Result<String> {
    match p.parse_expr() {
        Ok(Expr::Value(v)) => match v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => Ok(s),
            _ => Err(expected(p, what)),
        },
        Ok(_) => Err(expected(p, what)),
        Err(e) => Err(sql_error(p, e)),
    }
}

/// The upper-cased unquoted word `n` tokens ahead, if that token is a word.
pub(crate) fn word(p: &Parser<'_>, n: usize) -> Option<String> {
    match p.peek_nth_token(n).token {
        Token::Word(w) if w.quote_style.is_none() => Some(w.value.to_uppercase()),
        _ => None,
    }
}

/// Whether the statement ends right after `n` tokens (so `DESCRIBE history`
/// still describes a table named `history`).
fn ends_after(p: &Parser<'_>, n: usize) -> bool {
    matches!(p.peek_nth_token(n).token, Token::EOF | Token::SemiColon)
}

pub(crate) fn eat_word(p: &mut Parser<'_>, expected: &str) -> bool {
    if word(p, 0).as_deref() == Some(expected) {
        p.next_token();
        true
    } else {
        false
    }
}

pub(crate) fn eat_words(p: &mut Parser<'_>, expected: &[&str]) -> bool {
    let all = expected
        .iter()
        .enumerate()
        .all(|(i, w)| word(p, i).as_deref() == Some(*w));
    if all {
        for _ in expected {
            p.next_token();
        }
    }
    all
}

pub(crate) fn expect_word(p: &mut Parser<'_>, w: &str) -> Result<()> {
    if eat_word(p, w) {
        Ok(())
    } else {
        Err(expected(p, w))
    }
}

pub(crate) fn expected(p: &Parser<'_>, what: &str) -> ParseError {
    let found = p.peek_token();
    let found_text = match found.token {
        Token::EOF => "end of input".to_string(),
        t => t.to_string(),
    };
    ParseError {
        message: format!("expected {what}, found {found_text}"),
        line: found.span.start.line,
        column: found.span.start.column,
        statement: None,
    }
}

pub(crate) fn sql_error(
    p: &Parser<'_>,
    e: datafusion::sql::sqlparser::parser::ParserError,
) -> ParseError {
    let here = p.peek_token().span.start;
    ParseError::from_message("", &e.to_string(), Some(here))
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
        assert_eq!(job.schedule, JobSchedule::Every("1 second".into()));
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
        assert_eq!(job.schedule, JobSchedule::Cron("0 2 * * *".into()));
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

        for (bad, message) in [
            (
                "CREATE JOB j AS INSERT INTO t SELECT 1",
                "SCHEDULE 'cron' or EVERY",
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
}
