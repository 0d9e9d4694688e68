//! Job statements: `CREATE JOB` (its schedule, window and body),
//! `ALTER JOB … PAUSE | RESUME`, `RUN JOB`, `DROP JOB` and `SHOW JOBS`.

use datafusion::sql::parser::DFParser;
use datafusion::sql::sqlparser::ast::Expr;
use datafusion::sql::sqlparser::ast::Value;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::Token;

use crate::error::ParseError;
use crate::error::Result;
use crate::statement::{
    CreateJob, JOB_STATEMENTS, JobSchedule, ParsedStatement, Statement, WindowSpec,
};
use crate::tokens::{
    eat_word, eat_words, ends_after, expect_token, expect_word, expected, parse_object_name,
    parse_string, parse_table_name, sql_error, word,
};

/// A parser of one whole statement, for a job's body.
pub(crate) type BodyParser = fn(&mut DFParser<'_>) -> Result<Statement>;

/// Parses a statement of this family, or `None` (nothing consumed) when
/// the text is not one; `body` parses the statement a job runs.
pub(crate) fn parse(df: &mut DFParser<'_>, body: BodyParser) -> Result<Option<Statement>> {
    let p = &mut df.parser;
    let statement = match (word(p, 0).as_deref(), word(p, 1).as_deref()) {
        (Some("CREATE"), Some("JOB")) => {
            df.parser.next_token();
            df.parser.next_token();
            parse_create_job(df, body)
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
        _ => return Ok(None),
    };
    statement.map(Some)
}

/// `[IF NOT EXISTS] name SCHEDULE '…' | EVERY '…' | AFTER a, … [WINDOW …] [WATERMARK '…']
/// [LATE INTO t] AS statement`, after `CREATE JOB`.
fn parse_create_job(df: &mut DFParser<'_>, body_parser: BodyParser) -> Result<Statement> {
    let p = &mut df.parser;
    let if_not_exists = eat_words(p, &["IF", "NOT", "EXISTS"]);
    let name = parse_object_name(p, "a job name")?;
    let mut after = Vec::new();
    let schedule = if eat_word(p, "SCHEDULE") {
        Some(JobSchedule::Cron(parse_string(
            p,
            "a cron schedule string such as '*/5 * * * *'",
        )?))
    } else if eat_word(p, "EVERY") {
        Some(JobSchedule::Every(parse_interval(p)?))
    } else if eat_word(p, "AFTER") {
        loop {
            after.push(parse_object_name(p, "an upstream job name")?);
            if !p.consume_token(&Token::Comma) {
                break;
            }
        }
        None
    } else {
        return Err(expected(
            p,
            "SCHEDULE 'cron', EVERY 'interval' or AFTER upstream_job",
        ));
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
    let body = body_parser(df)?;
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
        after,
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
