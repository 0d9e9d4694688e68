//! Template bodies: statements with `${name}` placeholders, filled in by
//! type so that no value can change a statement's shape.
//!
//! The body is scanned as SQL is tokenized, so each placeholder is known
//! to stand in code, inside a string or quoted identifier, or in a comment
//! (where nothing is substituted). Each value is checked against its
//! parameter's type and written in one form in code:
//!
//! | type | accepted | written as |
//! |---|---|---|
//! | `IDENT` | `a` or `a.b.c`, each part letters, digits and `_` | `"a"."b"."c"` (lower case) |
//! | `TEXT` | anything | `'…'`, quotes doubled |
//! | `INT` | a whole number | the number |
//! | `DOUBLE` | a finite number | the number |
//! | `INTERVAL` | `n unit [n unit …]` | `'n unit …'` |
//!
//! Inside quotes (`table_changes('${s}.t')`, `EVERY '${every}'`) the value
//! is written bare — the name without quotes, the text itself — with that
//! quote character doubled. So an identifier cannot close its quotes, a
//! text cannot leave its literal, and a number or interval is made of
//! digits, a sign, a point and unit words only.

use crate::statement::{ParamType, ParsedStatement, TEMPLATE_STATEMENTS, TemplateParam};

/// Whether `s` is a plain name: a letter or `_`, then letters, digits or
/// `_`, at most 128 characters.
pub fn is_plain_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && s.len() <= 128
}

const INTERVAL_UNITS: [&str; 7] = [
    "microsecond",
    "millisecond",
    "second",
    "minute",
    "hour",
    "day",
    "week",
];

/// The SQL text `value` becomes as parameter `param` of type `ty`, or
/// why it cannot be one.
pub fn render(ty: ParamType, param: &str, value: &str) -> Result<String, String> {
    let bad = |what: &str| {
        let shown: String = value.chars().take(60).collect();
        Err(format!(
            "parameter {param} is {}: expected {what}, got '{shown}'",
            ty.as_str()
        ))
    };
    match ty {
        ParamType::Ident => {
            let parts: Vec<&str> = value.split('.').collect();
            if parts.len() > 3 || !parts.iter().all(|p| is_plain_name(p)) {
                return bad("a name (a, a.b or a.b.c) of letters, digits and _");
            }
            Ok(parts
                .iter()
                .map(|p| format!("\"{}\"", p.to_lowercase()))
                .collect::<Vec<_>>()
                .join("."))
        }
        ParamType::Text => {
            if value.contains('\0') {
                return bad("text without NUL characters");
            }
            Ok(format!("'{}'", value.replace('\'', "''")))
        }
        ParamType::Int => match value.trim().parse::<i64>() {
            Ok(v) => Ok(v.to_string()),
            Err(_) => bad("a whole number"),
        },
        ParamType::Double => match value.trim().parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(format!("{v:?}")),
            _ => bad("a finite number"),
        },
        ParamType::Interval => {
            let words: Vec<&str> = value.split_whitespace().collect();
            let valid = !words.is_empty()
                && words.len().is_multiple_of(2)
                && words.chunks(2).all(|pair| {
                    let number = pair[0]
                        .parse::<f64>()
                        .is_ok_and(|n| n.is_finite() && n >= 0.0)
                        && pair[0].chars().all(|c| c.is_ascii_digit() || c == '.');
                    let unit = pair[1].to_lowercase();
                    let unit = unit.strip_suffix('s').unwrap_or(&unit);
                    number && INTERVAL_UNITS.contains(&unit)
                });
            if !valid {
                return bad("an interval such as '5 minutes' or '1 hour 30 minutes'");
            }
            Ok(format!("'{}'", words.join(" ")))
        }
    }
}

/// A piece of a body: text as written, or a placeholder with its line and
/// the quote it stands inside (`None`: in code).
#[derive(Debug, PartialEq)]
enum Piece<'a> {
    Text(&'a str),
    Param(&'a str, usize, Option<u8>),
}

/// The placeholder at the start of `rest` (which begins with `${`): its
/// name and length, checked against `params`.
fn placeholder<'a>(
    rest: &'a str,
    line: usize,
    params: &[TemplateParam],
) -> Result<(&'a str, usize), String> {
    let Some(close) = rest.find('}') else {
        return Err(format!(
            "line {line} of the body: '${{' without a closing '}}'"
        ));
    };
    let name = &rest[2..close];
    if !is_plain_name(name) {
        return Err(format!(
            "line {line} of the body: '${{{name}}}' is not a parameter reference; expected ${{name}}"
        ));
    }
    if !params.iter().any(|p| p.name == name.to_lowercase()) {
        let declared: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
        return Err(format!(
            "line {line} of the body: ${{{name}}} is not a parameter of the template (parameters: {})",
            if declared.is_empty() {
                "none".to_string()
            } else {
                declared.join(", ")
            }
        ));
    }
    Ok((name, close + 1))
}

/// Splits `body` into text and placeholders; placeholders in comments are
/// left as text.
fn pieces<'a>(body: &'a str, params: &[TemplateParam]) -> Result<Vec<Piece<'a>>, String> {
    let bytes = body.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    let mut line = 1;
    let mut quote: Option<u8> = None;
    let mut quote_line = 0;
    while i < bytes.len() {
        match (quote, bytes[i]) {
            (_, b'\n') => {
                line += 1;
                i += 1;
            }
            (_, b'$') if bytes.get(i + 1) == Some(&b'{') => {
                let (name, len) = placeholder(&body[i..], line, params)?;
                out.push(Piece::Text(&body[start..i]));
                out.push(Piece::Param(name, line, quote));
                i += len;
                start = i;
            }
            (Some(q), c) if c == q => {
                if bytes.get(i + 1) == Some(&q) {
                    i += 2;
                } else {
                    quote = None;
                    i += 1;
                }
            }
            (Some(_), _) => i += 1,
            (None, q @ (b'\'' | b'"')) => {
                quote = Some(q);
                quote_line = line;
                i += 1;
            }
            (None, b'-') if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            (None, b'/') if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < bytes.len() && !(bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/')) {
                    if bytes[i] == b'\n' {
                        line += 1;
                    }
                    i += 1;
                }
                i = (i + 2).min(bytes.len());
            }
            _ => i += 1,
        }
    }
    if let Some(q) = quote {
        return Err(format!(
            "line {quote_line} of the body: unterminated {} quote",
            if q == b'\'' { "single" } else { "double" }
        ));
    }
    out.push(Piece::Text(&body[start..]));
    Ok(out)
}

/// `value` (already checked by [`render`]) as written inside `quote`: the
/// name or text itself, that quote doubled.
fn render_quoted(ty: ParamType, param: &str, value: &str, quote: u8) -> Result<String, String> {
    let bare = match ty {
        ParamType::Ident => render(ty, param, value)?.replace('"', ""),
        ParamType::Text => value.to_string(),
        ParamType::Interval => render(ty, param, value)?.trim_matches('\'').to_string(),
        ParamType::Int | ParamType::Double => render(ty, param, value)?,
    };
    let q = quote as char;
    Ok(bare.replace(q, &format!("{q}{q}")))
}

/// The body with every placeholder replaced by its value: `value` gives
/// a parameter's value text. A one-part `IDENT` written against other
/// name characters in code (`${s}_daily`, `raw_${s}`) becomes one quoted
/// name with them (`"sales_daily"`).
fn fill(
    body: &str,
    params: &[TemplateParam],
    value: impl Fn(&TemplateParam) -> Result<String, String>,
) -> Result<String, String> {
    let is_name_char = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = String::with_capacity(body.len());
    let mut skip = 0;
    let pieces = pieces(body, params)?;
    for (i, piece) in pieces.iter().enumerate() {
        match piece {
            Piece::Text(text) => out.push_str(&text[skip.min(text.len())..]),
            Piece::Param(name, line, quote) => {
                let name = name.to_lowercase();
                let param = params
                    .iter()
                    .find(|p| p.name == name)
                    .expect("pieces checks every placeholder is declared");
                let v = value(param)?;
                let rendered = match quote {
                    Some(q) => render_quoted(param.ty, &param.name, &v, *q)?,
                    None if param.ty == ParamType::Ident => {
                        let prefix_len = out.len() - out.trim_end_matches(is_name_char).len();
                        let next = match pieces.get(i + 1) {
                            Some(Piece::Text(t)) => *t,
                            _ => "",
                        };
                        let suffix_len = next.len() - next.trim_start_matches(is_name_char).len();
                        let quoted = render(param.ty, &param.name, &v)?;
                        if prefix_len + suffix_len > 0 {
                            if quoted.contains('.') {
                                return Err(format!(
                                    "line {line} of the body: ${{{name}}} is joined to other name characters, \
                                     so its value must be one name, not '{v}'"
                                ));
                            }
                            let prefix = out.split_off(out.len() - prefix_len).to_lowercase();
                            let suffix = next[..suffix_len].to_lowercase();
                            format!("\"{prefix}{}{suffix}\"", quoted.trim_matches('"'))
                        } else {
                            quoted
                        }
                    }
                    None => render(param.ty, &param.name, &v)?,
                };
                out.push_str(&rendered);
                skip = match (quote, param.ty, pieces.get(i + 1)) {
                    (None, ParamType::Ident, Some(Piece::Text(t))) => {
                        t.len() - t.trim_start_matches(is_name_char).len()
                    }
                    _ => 0,
                };
                continue;
            }
        }
        skip = 0;
    }
    Ok(out)
}

/// The parameters' values for a pipeline: each given value checked, the
/// defaults of the others; unknown or missing parameters are errors.
pub fn bind(
    template: &str,
    params: &[TemplateParam],
    args: &[(String, String)],
) -> Result<Vec<(String, String)>, String> {
    for (key, _) in args {
        if !params.iter().any(|p| p.name == *key) {
            let declared: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
            return Err(format!(
                "template {template} has no parameter {key} (parameters: {})",
                if declared.is_empty() {
                    "none".to_string()
                } else {
                    declared.join(", ")
                }
            ));
        }
    }
    let mut out = Vec::new();
    for p in params {
        let value = match args.iter().find(|(k, _)| *k == p.name) {
            Some((_, v)) => v.clone(),
            None => match &p.default {
                Some(d) => d.clone(),
                None => {
                    return Err(format!(
                        "template {template} needs a value for parameter {} ({}): \
                         WITH ({} = …)",
                        p.name,
                        p.ty.as_str(),
                        p.name
                    ));
                }
            },
        };
        render(p.ty, &p.name, &value)?;
        out.push((p.name.clone(), value));
    }
    Ok(out)
}

/// The body filled with `values` (from [`bind`]).
pub fn substitute(
    body: &str,
    params: &[TemplateParam],
    values: &[(String, String)],
) -> Result<String, String> {
    fill(body, params, |p| {
        values
            .iter()
            .find(|(k, _)| *k == p.name)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| format!("no value for parameter {}", p.name))
    })
}

/// Parses a filled body into statements, each a kind a template may
/// hold; errors name the statement and its line in the body.
pub fn statements(template: &str, filled: &str) -> Result<Vec<ParsedStatement>, String> {
    let parsed = crate::parse(filled).map_err(|e| {
        format!(
            "template {template}, line {} of the body: {}",
            e.line, e.message
        )
    })?;
    if parsed.is_empty() {
        return Err(format!("template {template} has no statements"));
    }
    for (i, s) in parsed.iter().enumerate() {
        let kind = s.statement.kind();
        if !TEMPLATE_STATEMENTS.contains(&kind) {
            return Err(format!(
                "template {template}, statement {} at line {} of the body: a template holds {}; found {kind}",
                i + 1,
                s.line,
                TEMPLATE_STATEMENTS.join(", ")
            ));
        }
    }
    Ok(parsed)
}

/// Checks a template when it is created: placeholders, defaults, and the
/// body parsed with stand-in values of each parameter's type.
pub fn check(template: &str, params: &[TemplateParam], body: &str) -> Result<usize, String> {
    let filled = fill(body, params, |p| {
        Ok(match (&p.default, p.ty) {
            (Some(d), _) => d.clone(),
            (None, ParamType::Ident) => p.name.clone(),
            (None, ParamType::Text) => "text".to_string(),
            (None, ParamType::Int) => "1".to_string(),
            (None, ParamType::Double) => "1.0".to_string(),
            (None, ParamType::Interval) => "1 minute".to_string(),
        })
    })
    .map_err(|e| format!("template {template}, {e}"))?;
    Ok(statements(template, &filled)?.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param(name: &str, ty: ParamType) -> TemplateParam {
        TemplateParam {
            name: name.into(),
            ty,
            default: None,
        }
    }

    #[test]
    fn hostile_values_cannot_leave_their_place() {
        for v in [
            "x\"; DROP TABLE t; --",
            "a b",
            "a;b",
            "a.b.c.d",
            "",
            "1x",
            "a--",
            "\"x\"",
        ] {
            assert!(render(ParamType::Ident, "p", v).is_err(), "{v}");
        }
        assert_eq!(
            render(ParamType::Ident, "p", "Sales.Orders").unwrap(),
            "\"sales\".\"orders\""
        );
        assert_eq!(
            render(ParamType::Text, "p", "it's'); DROP TABLE t; --").unwrap(),
            "'it''s''); DROP TABLE t; --'"
        );
        for v in ["1; DROP TABLE t", "1e3", "0x10", " "] {
            assert!(render(ParamType::Int, "p", v).is_err(), "{v}");
        }
        assert_eq!(render(ParamType::Int, "p", "-42").unwrap(), "-42");
        for v in ["NaN", "inf", "1 OR 1=1", ""] {
            assert!(render(ParamType::Double, "p", v).is_err(), "{v}");
        }
        assert_eq!(render(ParamType::Double, "p", "0.25").unwrap(), "0.25");
        for v in [
            "5 minutes'; DROP TABLE t; --",
            "5",
            "minutes",
            "-1 hour",
            "1 fortnight",
        ] {
            assert!(render(ParamType::Interval, "p", v).is_err(), "{v}");
        }
        assert_eq!(
            render(ParamType::Interval, "p", "1 hour  30 minutes").unwrap(),
            "'1 hour 30 minutes'"
        );
    }

    #[test]
    fn a_hostile_text_stays_one_literal() {
        let params = [param("s", ParamType::Ident), param("note", ParamType::Text)];
        let body = "INSERT INTO ${s}.t VALUES (${note})";
        let values = bind(
            "t",
            &params,
            &[
                ("s".into(), "lake_s".into()),
                ("note".into(), "x'); DROP TABLE lake.public.t; --".into()),
            ],
        )
        .unwrap();
        let filled = substitute(body, &params, &values).unwrap();
        let parsed = statements("t", &filled).unwrap();
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].statement.kind(), "INSERT");
    }

    #[test]
    fn placeholders_in_code_and_quotes_not_comments() {
        let params = [param("s", ParamType::Ident), param("note", ParamType::Text)];
        let values = [
            ("s".to_string(), "a".to_string()),
            ("note".to_string(), "it's \"x\"".to_string()),
        ];
        let filled = substitute(
            "-- ${s}\nSELECT ${note}, '${s}.t', '${note}', \"${note}\" FROM ${s}.t /* ${s} */",
            &params,
            &values,
        )
        .unwrap();
        assert_eq!(
            filled,
            "-- ${s}\nSELECT 'it''s \"x\"', 'a.t', 'it''s \"x\"', \"it's \"\"x\"\"\" FROM \"a\".t /* ${s} */"
        );
        let parsed = statements("t", &filled).map_err(|e| e.contains("SELECT"));
        assert_eq!(parsed.err(), Some(true));
        let e = check("t", &params, "SELECT 1;\nSELECT 'x").unwrap_err();
        assert!(e.contains("line 2") && e.contains("unterminated"), "{e}");
        let e = check("t", &params, "SELECT ${nope}").unwrap_err();
        assert!(
            e.contains("not a parameter") && e.contains("parameters: s, note"),
            "{e}"
        );
    }

    #[test]
    fn body_errors_name_statement_and_line() {
        let params = [param("s", ParamType::Ident)];
        let e = check(
            "t",
            &params,
            "CREATE TABLE ${s}.a (x INT);\n\nINSERT INTO ${s}.a VALUES (1,;",
        )
        .unwrap_err();
        assert!(e.contains("line 3 of the body"), "{e}");
        let e = check(
            "t",
            &params,
            "CREATE TABLE ${s}.a (x INT);\nDROP TABLE ${s}.a",
        )
        .unwrap_err();
        assert!(
            e.contains("statement 2 at line 2") && e.contains("found DROP TABLE"),
            "{e}"
        );
        assert_eq!(
            check("t", &params, "CREATE TABLE ${s}.a (x INT); SELECT 1")
                .map_err(|e| e.contains("SELECT")),
            Err(true)
        );
    }

    #[test]
    fn a_name_joined_to_a_placeholder_is_one_quoted_name() {
        let params = [param("s", ParamType::Ident)];
        let values = [("s".to_string(), "Sales".to_string())];
        assert_eq!(
            substitute(
                "CREATE JOB ${s}_copy AS INSERT INTO raw_${s} SELECT * FROM ${s}.t",
                &params,
                &values
            )
            .unwrap(),
            "CREATE JOB \"sales_copy\" AS INSERT INTO \"raw_sales\" SELECT * FROM \"sales\".t"
        );
        let dotted = [("s".to_string(), "a.b".to_string())];
        assert!(
            substitute("SELECT 1 FROM ${s}_x", &params, &dotted)
                .unwrap_err()
                .contains("must be one name")
        );
    }

    #[test]
    fn binding_checks_names_and_defaults() {
        let mut rows = param("rows", ParamType::Int);
        rows.default = Some("10".into());
        let params = [param("s", ParamType::Ident), rows];
        assert!(
            bind("t", &params, &[])
                .unwrap_err()
                .contains("needs a value for parameter s")
        );
        assert!(
            bind("t", &params, &[("x".into(), "1".into())])
                .unwrap_err()
                .contains("no parameter x")
        );
        let values = bind("t", &params, &[("s".into(), "a".into())]).unwrap();
        assert_eq!(values[1], ("rows".into(), "10".into()));
        assert!(
            bind(
                "t",
                &params,
                &[("s".into(), "a".into()), ("rows".into(), "ten".into())]
            )
            .unwrap_err()
            .contains("parameter rows is INT")
        );
    }
}
