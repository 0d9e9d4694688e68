//! Table maintenance statements: `DESCRIBE HISTORY`, `RESTORE`, `OPTIMIZE`
//! and `VACUUM`; and `SHOW CLUSTER`, the machines queries run on.

use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::Token;

use crate::error::Result;
use crate::statement::{DescribeHistory, Optimize, Restore, Statement, TimeTravel, Vacuum};
use crate::tokens::{
    eat_word, eat_words, ends_after, expect_word, expected, parse_number, parse_string,
    parse_table_name, parse_unsigned, sql_error, word,
};

/// Parses a statement of this family, or `None` (nothing consumed) when
/// the text is not one.
pub(crate) fn parse(p: &mut Parser<'_>) -> Result<Option<Statement>> {
    let statement = match (word(p, 0).as_deref(), word(p, 1).as_deref()) {
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
        (Some("SHOW"), Some("CLUSTER")) if ends_after(p, 2) => {
            p.next_token();
            p.next_token();
            Ok(Statement::ShowCluster)
        }
        _ => return Ok(None),
    };
    statement.map(Some)
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
