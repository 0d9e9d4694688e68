//! Drift statements: `CHECK DRIFT` and the monitors that run it on a
//! schedule (`CREATE`, `RUN`, `DROP MONITOR`, `SHOW MONITORS`).

use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::Token;

use crate::error::Result;
use crate::statement::{
    CreateMonitor, DRIFT_TESTS, DriftCheck, DriftReference, OnDrift, Statement, TimeTravel,
};
use crate::tokens::{
    eat_word, eat_words, ends_after, expect_token, expect_word, expected, parse_number,
    parse_object_name, parse_string, parse_table_name, parse_unsigned, sql_error, word,
};

/// Parses a statement of this family, or `None` (nothing consumed) when
/// the text is not one.
pub(crate) fn parse(p: &mut Parser<'_>) -> Result<Option<Statement>> {
    let statement = match (word(p, 0).as_deref(), word(p, 1).as_deref()) {
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
        _ => return Ok(None),
    };
    statement.map(Some)
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

/// `[IF NOT EXISTS] name ON t … SCHEDULE '…' [ON DRIFT RETRAIN MODEL m
/// [PROMOTE WHEN metric op x]]`, after `CREATE MONITOR`.
fn parse_create_monitor(p: &mut Parser<'_>) -> Result<Statement> {
    let if_not_exists = eat_words(p, &["IF", "NOT", "EXISTS"]);
    let name = parse_object_name(p, "a monitor name")?;
    let check = parse_drift_check(p)?;
    if !eat_word(p, "SCHEDULE") {
        return Err(expected(p, "SCHEDULE 'cron or interval'"));
    }
    let schedule = parse_string(p, "a schedule string")?;
    let on_drift = if eat_words(p, &["ON", "DRIFT"]) {
        if !eat_words(p, &["RETRAIN", "MODEL"]) {
            return Err(expected(p, "RETRAIN MODEL m after ON DRIFT"));
        }
        let model = parse_object_name(p, "a model name")?;
        let gate = if eat_words(p, &["PROMOTE", "WHEN"]) {
            let metric = match p.peek_token().token {
                Token::Word(w) => w.value.to_lowercase(),
                _ => return Err(expected(p, "a metric name such as accuracy or rmse")),
            };
            p.next_token();
            let op = match p.next_token().token {
                Token::GtEq => ">=",
                Token::Gt => ">",
                Token::LtEq => "<=",
                Token::Lt => "<",
                _ => {
                    p.prev_token();
                    return Err(expected(p, "a comparison (>=, >, <= or <)"));
                }
            };
            let bound = parse_number(p, "the metric's bound, a number")?;
            Some((metric, op.to_string(), bound))
        } else {
            None
        };
        Some(OnDrift { model, gate })
    } else {
        None
    };
    Ok(Statement::CreateMonitor(CreateMonitor {
        name,
        if_not_exists,
        check,
        schedule,
        on_drift,
    }))
}
