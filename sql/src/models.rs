//! Model statements: `CREATE MODEL`, `SHOW MODELS`, `DESCRIBE MODEL`,
//! `ALTER MODEL … SET STAGE | SET LOGGING`, `DROP MODEL`, `EVALUATE MODEL`
//! and `REPRODUCE MODEL`.

use datafusion::sql::sqlparser::ast;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::Token;

use crate::error::Result;
use crate::statement::{CreateModel, MODEL_TYPES, Statement};
use crate::tokens::{
    eat_word, eat_words, ends_after, expect_token, expect_word, expected, parse_number,
    parse_object_name, parse_options, parse_string, parse_unsigned, sql_error, word,
};

/// Parses a statement of this family, or `None` (nothing consumed) when
/// the text is not one.
pub(crate) fn parse(p: &mut Parser<'_>) -> Result<Option<Statement>> {
    let statement = match (word(p, 0).as_deref(), word(p, 1).as_deref()) {
        (Some("CREATE"), Some("MODEL")) => {
            p.next_token();
            p.next_token();
            parse_create_model(p)
        }
        (Some("REPRODUCE"), Some("MODEL")) => {
            p.next_token();
            p.next_token();
            let name = parse_object_name(p, "a model name")?;
            let version = parse_model_version(p)?;
            Ok(Statement::ReproduceModel { name, version })
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
            if eat_words(p, &["SET", "LOGGING"]) {
                return parse_logging(p, name).map(Some);
            }
            if !eat_words(p, &["SET", "STAGE"]) {
                return Err(expected(p, "SET STAGE 'stage' or SET LOGGING TO table"));
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
        _ => return Ok(None),
    };
    statement.map(Some)
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

/// `TO table [SAMPLE x] | OFF`, after `ALTER MODEL m SET LOGGING`.
fn parse_logging(p: &mut Parser<'_>, name: ast::ObjectName) -> Result<Statement> {
    if eat_word(p, "OFF") {
        return Ok(Statement::AlterModelLogging {
            name,
            table: None,
            sample: 1.0,
        });
    }
    if !eat_word(p, "TO") {
        return Err(expected(p, "TO table or OFF"));
    }
    let table = parse_object_name(p, "the table predictions are logged to")?;
    let sample = if eat_word(p, "SAMPLE") {
        let what = "a sample share in (0, 1]";
        let share = parse_number(p, what)?;
        if !(share > 0.0 && share <= 1.0) {
            p.prev_token();
            return Err(expected(p, what));
        }
        share
    } else {
        1.0
    };
    Ok(Statement::AlterModelLogging {
        name,
        table: Some(table),
        sample,
    })
}
