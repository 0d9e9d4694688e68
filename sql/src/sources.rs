//! Source statements: `CREATE SOURCE`, `SHOW SOURCES`, `DROP SOURCE`,
//! `SYNC TABLE` and `SYNC SOURCE`.

use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::Token;

use crate::error::Result;
use crate::statement::{CreateSource, SOURCE_TYPES, Statement, SyncTable};
use crate::tokens::{
    eat_word, eat_words, ends_after, expect_token, expect_word, expected, parse_object_name,
    parse_options, parse_table_name, sql_error, word,
};

/// Parses a statement of this family, or `None` (nothing consumed) when
/// the text is not one.
pub(crate) fn parse(p: &mut Parser<'_>) -> Result<Option<Statement>> {
    let statement = match (word(p, 0).as_deref(), word(p, 1).as_deref()) {
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
        _ => return Ok(None),
    };
    statement.map(Some)
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
