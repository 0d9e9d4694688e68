//! Template and pipeline statements: `CREATE [OR REPLACE] TEMPLATE`,
//! `DROP TEMPLATE`, `SHOW TEMPLATES`, `CREATE PIPELINE … FROM TEMPLATE`,
//! `DROP PIPELINE [PURGE]` and `SHOW PIPELINES`.

use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::Token;

use crate::error::Result;
use crate::statement::{CreatePipeline, CreateTemplate, ParamType, Statement, TemplateParam};
use crate::tokens::{
    eat_word, eat_words, ends_after, expect_token, expect_word, expected, parse_object_name,
    parse_unsigned, word,
};

/// Parses a statement of this family, or `None` (nothing consumed) when
/// the text is not one.
pub(crate) fn parse(p: &mut Parser<'_>) -> Result<Option<Statement>> {
    let statement = match (
        word(p, 0).as_deref(),
        word(p, 1).as_deref(),
        word(p, 2).as_deref(),
        word(p, 3).as_deref(),
    ) {
        (Some("CREATE"), Some("TEMPLATE"), ..) => {
            p.next_token();
            p.next_token();
            parse_create_template(p, false)
        }
        (Some("CREATE"), Some("OR"), Some("REPLACE"), Some("TEMPLATE")) => {
            for _ in 0..4 {
                p.next_token();
            }
            parse_create_template(p, true)
        }
        (Some("DROP"), Some("TEMPLATE"), ..) => {
            p.next_token();
            p.next_token();
            let if_exists = eat_words(p, &["IF", "EXISTS"]);
            let name = parse_object_name(p, "a template name")?;
            Ok(Statement::DropTemplate { name, if_exists })
        }
        (Some("SHOW"), Some("TEMPLATES"), ..) if ends_after(p, 2) => {
            p.next_token();
            p.next_token();
            Ok(Statement::ShowTemplates)
        }
        (Some("CREATE"), Some("PIPELINE"), ..) => {
            p.next_token();
            p.next_token();
            parse_create_pipeline(p)
        }
        (Some("DROP"), Some("PIPELINE"), ..) => {
            p.next_token();
            p.next_token();
            let if_exists = eat_words(p, &["IF", "EXISTS"]);
            let name = parse_object_name(p, "a pipeline name")?;
            let purge = eat_word(p, "PURGE");
            Ok(Statement::DropPipeline {
                name,
                if_exists,
                purge,
            })
        }
        (Some("SHOW"), Some("PIPELINES"), ..) if ends_after(p, 2) => {
            p.next_token();
            p.next_token();
            Ok(Statement::ShowPipelines)
        }
        _ => return Ok(None),
    };
    statement.map(Some)
}

/// `t (p TYPE [DEFAULT v], …) AS $$ body $$`, after `CREATE [OR REPLACE]
/// TEMPLATE`.
fn parse_create_template(p: &mut Parser<'_>, or_replace: bool) -> Result<Statement> {
    let name = parse_object_name(p, "a template name")?;
    let mut params: Vec<TemplateParam> = Vec::new();
    expect_token(p, &Token::LParen, "'(' and the template's parameters")?;
    if !p.consume_token(&Token::RParen) {
        loop {
            let param = match p.peek_token().token {
                Token::Word(w) => w.value.to_lowercase(),
                _ => return Err(expected(p, "a parameter name")),
            };
            if !crate::template::is_plain_name(&param) {
                return Err(expected(p, "a parameter name of letters, digits and _"));
            }
            if params.iter().any(|q| q.name == param) {
                return Err(expected(p, &format!("parameter {param} only once")));
            }
            p.next_token();
            let what = "a parameter type: IDENT, TEXT, INT, DOUBLE or INTERVAL";
            let ty = match word(p, 0).as_deref().and_then(ParamType::from_word) {
                Some(ty) => ty,
                None => return Err(expected(p, what)),
            };
            p.next_token();
            let default = if eat_word(p, "DEFAULT") {
                let value = parse_value(p, "a default value")?;
                crate::template::render(ty, &param, &value).map_err(|e| expected(p, &e))?;
                Some(value)
            } else {
                None
            };
            params.push(TemplateParam {
                name: param,
                ty,
                default,
            });
            if !p.consume_token(&Token::Comma) {
                break;
            }
        }
        expect_token(p, &Token::RParen, "')' after the parameters")?;
    }
    expect_word(p, "AS")?;
    let body = match p.peek_token().token {
        Token::DollarQuotedString(s) => s.value,
        Token::SingleQuotedString(s) => s,
        _ => return Err(expected(p, "the body between $$ and $$")),
    };
    p.next_token();
    Ok(Statement::CreateTemplate(Box::new(CreateTemplate {
        name,
        or_replace,
        params,
        body,
    })))
}

/// `p FROM TEMPLATE t [VERSION n] [WITH (k = v, …)]`, after `CREATE
/// PIPELINE`.
fn parse_create_pipeline(p: &mut Parser<'_>) -> Result<Statement> {
    let name = parse_object_name(p, "a pipeline name")?;
    if !eat_words(p, &["FROM", "TEMPLATE"]) {
        return Err(expected(p, "FROM TEMPLATE t"));
    }
    let template = parse_object_name(p, "a template name")?;
    let version = if eat_word(p, "VERSION") {
        Some(parse_unsigned(p, "a template version number")?)
    } else {
        None
    };
    let mut args: Vec<(String, String)> = Vec::new();
    if eat_word(p, "WITH") {
        expect_token(p, &Token::LParen, "'(' after WITH")?;
        if !p.consume_token(&Token::RParen) {
            loop {
                let key = match p.peek_token().token {
                    Token::Word(w) => w.value.to_lowercase(),
                    _ => return Err(expected(p, "a parameter name")),
                };
                if args.iter().any(|(k, _)| *k == key) {
                    return Err(expected(p, &format!("parameter {key} only once")));
                }
                p.next_token();
                expect_token(p, &Token::Eq, "'=' after the parameter name")?;
                let value = parse_value(p, &format!("a value for parameter {key}"))?;
                args.push((key, value));
                if !p.consume_token(&Token::Comma) {
                    break;
                }
            }
            expect_token(p, &Token::RParen, "')' after the parameters")?;
        }
    }
    Ok(Statement::CreatePipeline(Box::new(CreatePipeline {
        name,
        template,
        version,
        args,
    })))
}

/// A parameter value: a string, a number (maybe negative) or a name
/// (`a` or `a.b.c`), as text.
fn parse_value(p: &mut Parser<'_>, what: &str) -> Result<String> {
    let value = match p.peek_token().token {
        Token::SingleQuotedString(s) => s,
        Token::Number(n, _) => n,
        Token::Minus => {
            p.next_token();
            match p.peek_token().token {
                Token::Number(n, _) => format!("-{n}"),
                _ => return Err(expected(p, "a number after '-'")),
            }
        }
        Token::Word(_) => {
            let mut parts = Vec::new();
            loop {
                match p.peek_token().token {
                    Token::Word(w) => parts.push(w.value),
                    _ => return Err(expected(p, what)),
                }
                p.next_token();
                if !p.consume_token(&Token::Period) {
                    break;
                }
            }
            return Ok(parts.join("."));
        }
        _ => return Err(expected(p, what)),
    };
    p.next_token();
    Ok(value)
}
