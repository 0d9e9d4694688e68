//! Token-level helpers shared by the statement parsers: words, names,
//! strings and the "expected …, found …" error they give.

use datafusion::sql::sqlparser::ast::{Expr, ObjectName, Value};
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::Token;

use crate::error::{ParseError, Result};

pub(crate) fn expect_token(p: &mut Parser<'_>, token: &Token, what: &str) -> Result<()> {
    if p.consume_token(token) {
        Ok(())
    } else {
        Err(expected(p, what))
    }
}

pub(crate) fn parse_object_name(p: &mut Parser<'_>, what: &str) -> Result<ObjectName> {
    if !matches!(p.peek_token().token, Token::Word(_)) {
        return Err(expected(p, what));
    }
    p.parse_object_name(false).map_err(|e| sql_error(p, e))
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

/// `(key value, …)` after `OPTIONS`: lower-case keys, each once; values
/// are strings, numbers or the words `true`/`false`.
pub(crate) fn parse_options(p: &mut Parser<'_>) -> Result<Vec<(String, String)>> {
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

pub(crate) fn parse_table_name(p: &mut Parser<'_>) -> Result<ObjectName> {
    parse_object_name(p, "a table name")
}

pub(crate) fn parse_unsigned(p: &mut Parser<'_>, what: &str) -> Result<u64> {
    let token = p.peek_token();
    if let Token::Number(n, _) = &token.token
        && let Ok(v) = n.parse::<u64>()
    {
        p.next_token();
        return Ok(v);
    }
    Err(expected(p, what))
}

pub(crate) fn parse_number(p: &mut Parser<'_>, what: &str) -> Result<f64> {
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

/// Whether the statement ends right after `n` tokens (so `DESCRIBE history`
/// still describes a table named `history`).
pub(crate) fn ends_after(p: &Parser<'_>, n: usize) -> bool {
    matches!(p.peek_nth_token(n).token, Token::EOF | Token::SemiColon)
}
