//! The search language an assistant types: free words over names, paths and the fields
//! people say, and `field:value` terms (`codec:prores_4444 reel:A003 fps:23.976
//! width:>=3840 camera:alexa duration:>30s scene:12 take:3
//! tc:10:14:00:00-10:20:00:00`). A query that does not read is refused with the
//! position of what is wrong.

/// A comparison on a number.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Compare {
    Eq(f64),
    Gt(f64),
    Ge(f64),
    Lt(f64),
    Le(f64),
}

/// One condition of a query; all must hold.
#[derive(Debug, Clone, PartialEq)]
pub enum Term {
    /// A word that must appear somewhere in the clip's text (name, path, reel, camera,
    /// scene, take …).
    Word(String),
    /// A field that must have this value (compared in lower case).
    Keyword { field: &'static str, value: String },
    /// Words that must appear in a text field (`camera:alexa`, `name:a003c012`).
    Text { field: &'static str, value: String },
    /// A number (`width:>=3840`, `fps:23.976`, `duration:>30s`).
    Number {
        field: &'static str,
        compare: Compare,
    },
    /// Clips whose timecode span overlaps this one, in seconds since midnight.
    Timecode { from: f64, to: f64 },
}

/// Why a query does not read: where (a character position, from 1) and what.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("at character {at}: {message}")]
pub struct QueryError {
    pub at: usize,
    pub message: String,
}

/// The fields a query may name, and how each is compared.
const FIELDS: &[(&str, Kind)] = &[
    ("codec", Kind::Keyword),
    ("reel", Kind::Keyword),
    ("tape", Kind::Keyword),
    ("scene", Kind::Keyword),
    ("take", Kind::Keyword),
    ("project", Kind::Keyword),
    ("share", Kind::Keyword),
    ("ext", Kind::Keyword),
    ("format", Kind::Keyword),
    ("circled", Kind::Keyword),
    ("package", Kind::Keyword),
    ("camera", Kind::Text),
    ("name", Kind::Text),
    ("width", Kind::Number),
    ("height", Kind::Number),
    ("fps", Kind::Number),
    ("duration", Kind::Duration),
    ("channels", Kind::Number),
    ("tc", Kind::Timecode),
];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Keyword,
    Text,
    Number,
    Duration,
    Timecode,
}

/// The names a query may use before a colon.
pub fn field_names() -> impl Iterator<Item = &'static str> {
    FIELDS.iter().map(|(name, _)| *name)
}

/// Split `query` into terms.
pub fn parse(query: &str) -> Result<Vec<Term>, QueryError> {
    let chars: Vec<char> = query.chars().collect();
    if chars.len() > 4096 {
        return Err(QueryError {
            at: 4097,
            message: "a query may be 4,096 characters at most".into(),
        });
    }
    let mut terms = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        // A token runs to the next space outside quotes.
        let mut token = String::new();
        let mut quoted_from = None;
        while i < chars.len() && (quoted_from.is_some() || !chars[i].is_whitespace()) {
            if chars[i] == '"' {
                quoted_from = match quoted_from {
                    None => Some(i),
                    Some(_) => None,
                };
            } else {
                token.push(chars[i]);
            }
            i += 1;
        }
        if let Some(q) = quoted_from {
            return Err(QueryError {
                at: q + 1,
                message: "this quote is never closed".into(),
            });
        }
        terms.push(term(&token, &chars[start..i], start)?);
    }
    Ok(terms)
}

fn term(token: &str, raw: &[char], start: usize) -> Result<Term, QueryError> {
    let Some(colon) = raw.iter().position(|&c| c == ':') else {
        return Ok(Term::Word(token.to_lowercase()));
    };
    let name: String = raw[..colon].iter().collect::<String>().to_lowercase();
    let value_at = start + colon + 2;
    let Some(&(field, kind)) = FIELDS.iter().find(|(f, _)| *f == name) else {
        return Err(QueryError {
            at: start + 1,
            message: format!(
                "there is no field {name:?}; fields are {}",
                field_names().collect::<Vec<_>>().join(", ")
            ),
        });
    };
    let value: String = token
        .split_once(':')
        .map(|(_, v)| v.to_string())
        .unwrap_or_default();
    let fail = |message: String| QueryError {
        at: value_at,
        message,
    };
    if value.is_empty() {
        return Err(fail(format!("{field}: needs a value after the colon")));
    }
    Ok(match kind {
        Kind::Keyword => Term::Keyword {
            field,
            value: value.to_lowercase(),
        },
        Kind::Text => Term::Text {
            field,
            value: value.to_lowercase(),
        },
        Kind::Number => Term::Number {
            field,
            compare: compare(&value, |v| v.parse::<f64>().ok()).ok_or_else(|| {
                fail(format!(
                    "{field}:{value} is not a number or a comparison such as {field}:>=3840"
                ))
            })?,
        },
        Kind::Duration => Term::Number {
            field,
            compare: compare(&value, seconds).ok_or_else(|| {
                fail(format!(
                    "duration:{value} is not a span such as duration:>30s, duration:<2m or duration:1h"
                ))
            })?,
        },
        Kind::Timecode => {
            let (from, to) = value.split_once('-').unwrap_or((&value, &value));
            match (timecode_seconds(from), timecode_seconds(to)) {
                (Some(from), Some(to)) if from <= to => Term::Timecode { from, to },
                _ => {
                    return Err(fail(format!(
                        "tc:{value} is not a timecode or a range such as tc:10:14:00:00-10:20:00:00"
                    )))
                }
            }
        }
    })
}

fn compare(value: &str, number: impl Fn(&str) -> Option<f64>) -> Option<Compare> {
    let (op, rest) = [">=", "<=", ">", "<", "="]
        .iter()
        .find_map(|op| value.strip_prefix(op).map(|rest| (*op, rest)))
        .unwrap_or(("=", value));
    let n = number(rest).filter(|n| n.is_finite())?;
    Some(match op {
        ">=" => Compare::Ge(n),
        "<=" => Compare::Le(n),
        ">" => Compare::Gt(n),
        "<" => Compare::Lt(n),
        _ => Compare::Eq(n),
    })
}

/// `30s`, `2m`, `1h`, `90` (seconds), `1.5m`.
fn seconds(text: &str) -> Option<f64> {
    let (number, unit) = match text.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((at, _)) => text.split_at(at),
        None => (text, "s"),
    };
    let n: f64 = number.parse().ok()?;
    Some(match unit {
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return None,
    })
}

/// `HH:MM:SS:FF` (or `;FF`) as seconds since midnight, frames counted as a fraction of
/// a second at 100 a second at most (the query does not know the clip's rate, so a
/// frame is matched to within its second).
fn timecode_seconds(text: &str) -> Option<f64> {
    let parts: Vec<&str> = text.split([':', ';']).collect();
    let [h, m, s, f] = parts.as_slice() else {
        return None;
    };
    let (h, m, s, f): (u32, u32, u32, u32) = (
        h.parse().ok()?,
        m.parse().ok()?,
        s.parse().ok()?,
        f.parse().ok()?,
    );
    if h > 23 || m > 59 || s > 59 || f > 119 {
        return None;
    }
    Some(f64::from(h * 3600 + m * 60 + s) + f64::from(f) / 120.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_words_and_comparisons() {
        let q = parse("codec:ProRes_4444 reel:A003 fps:23.976 width:>=3840 camera:alexa duration:>30s scene:12 take:3 sunset \"day two\"").unwrap();
        assert_eq!(
            q,
            vec![
                Term::Keyword {
                    field: "codec",
                    value: "prores_4444".into()
                },
                Term::Keyword {
                    field: "reel",
                    value: "a003".into()
                },
                Term::Number {
                    field: "fps",
                    compare: Compare::Eq(23.976)
                },
                Term::Number {
                    field: "width",
                    compare: Compare::Ge(3840.0)
                },
                Term::Text {
                    field: "camera",
                    value: "alexa".into()
                },
                Term::Number {
                    field: "duration",
                    compare: Compare::Gt(30.0)
                },
                Term::Keyword {
                    field: "scene",
                    value: "12".into()
                },
                Term::Keyword {
                    field: "take",
                    value: "3".into()
                },
                Term::Word("sunset".into()),
                Term::Word("day two".into()),
            ]
        );
        assert_eq!(
            parse("tc:10:14:00:00-10:20:00:00").unwrap(),
            vec![Term::Timecode {
                from: 36840.0,
                to: 37200.0
            }]
        );
        assert_eq!(
            parse("duration:<2m").unwrap(),
            vec![Term::Number {
                field: "duration",
                compare: Compare::Lt(120.0)
            }]
        );
    }

    #[test]
    fn what_does_not_read_is_refused_where_it_is() {
        let e = parse("reel:A003 lens:50mm").unwrap_err();
        assert_eq!(e.at, 11);
        assert!(e.message.contains("no field \"lens\""), "{e}");
        let e = parse("width:>=wide").unwrap_err();
        assert_eq!(e.at, 7);
        assert!(e
            .to_string()
            .starts_with("at character 7: width:>=wide is not a number"));
        let e = parse("tc:25:00:00:00").unwrap_err();
        assert!(e.message.contains("not a timecode"), "{e}");
        let e = parse("name:\"open").unwrap_err();
        assert_eq!(e.at, 6);
        assert!(parse("codec:")
            .unwrap_err()
            .message
            .contains("needs a value"));
    }
}
