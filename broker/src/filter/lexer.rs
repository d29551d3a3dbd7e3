//! Splits filter text into tokens. The lexer never fails: anything odd becomes a
//! token the parser rejects with an error that fits where it stands.

/// What a token is; slices borrow the filter text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tok<'a> {
    /// A key or a keyword: a letter or `_`, then letters, digits, `_ - : .`.
    Word(&'a str),
    /// Something that starts like a number (a digit or `-`), up to the next
    /// character that cannot continue one; the parser checks its shape.
    Number(&'a str),
    /// A quoted string: `inner` is the text between the quotes, still escaped.
    /// `closed` is false when the text ended first.
    Quoted {
        inner: &'a str,
        closed: bool,
    },
    /// A run of `= ! < >`, e.g. `<=` (or `=<`, which the parser rejects).
    Op(&'a str),
    LParen,
    RParen,
    Comma,
    /// Any other character.
    Other,
    End,
}

/// A token and the byte offset where it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Token<'a> {
    pub tok: Tok<'a>,
    pub pos: usize,
}

/// A cursor over the filter text.
#[derive(Debug, Clone)]
pub(super) struct Lexer<'a> {
    src: &'a str,
    pos: usize,
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ':' | '.')
}

fn is_op_char(c: char) -> bool {
    matches!(c, '=' | '!' | '<' | '>')
}

impl<'a> Lexer<'a> {
    pub fn new(src: &'a str) -> Self {
        Lexer { src, pos: 0 }
    }

    fn skip_whitespace(&mut self) {
        let rest = &self.src[self.pos..];
        self.pos += rest.len() - rest.trim_start().len();
    }

    /// The length of `rest`'s prefix before the first character failing `keep`.
    fn run(rest: &str, keep: impl Fn(char) -> bool) -> usize {
        rest.find(|c| !keep(c)).unwrap_or(rest.len())
    }

    /// Consumes and returns the next token.
    pub fn next_token(&mut self) -> Token<'a> {
        self.skip_whitespace();
        let pos = self.pos;
        let rest = &self.src[pos..];
        let Some(c) = rest.chars().next() else {
            return Token { tok: Tok::End, pos };
        };
        let (tok, len) = match c {
            '(' => (Tok::LParen, 1),
            ')' => (Tok::RParen, 1),
            ',' => (Tok::Comma, 1),
            '\'' => Self::quoted(rest),
            c if is_op_char(c) => {
                let len = Self::run(rest, is_op_char);
                (Tok::Op(&rest[..len]), len)
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let len = Self::run(rest, is_word_char);
                (Tok::Word(&rest[..len]), len)
            }
            c if c.is_ascii_digit() || c == '-' => {
                let len = 1 + Self::run(&rest[1..], |c| {
                    c.is_ascii_alphanumeric() || matches!(c, '_' | '.')
                });
                (Tok::Number(&rest[..len]), len)
            }
            c => (Tok::Other, c.len_utf8()),
        };
        self.pos += len;
        Token { tok, pos }
    }

    /// A quoted string at the start of `rest`, and its length with the quotes.
    fn quoted(rest: &'a str) -> (Tok<'a>, usize) {
        let body = &rest[1..];
        let mut from = 0;
        while let Some(i) = body[from..].find('\'') {
            let quote = from + i;
            if body[quote + 1..].starts_with('\'') {
                from = quote + 2;
                continue;
            }
            let tok = Tok::Quoted {
                inner: &body[..quote],
                closed: true,
            };
            return (tok, quote + 2);
        }
        let tok = Tok::Quoted {
            inner: body,
            closed: false,
        };
        (tok, rest.len())
    }

    /// The next token, left unconsumed.
    pub fn peek(&self) -> Token<'a> {
        self.clone().next_token()
    }

    /// The literal after `DATE` or `TIME`: everything up to whitespace, a
    /// parenthesis, a comma or a quote (RFC 3339 holds `- : + .`, which would
    /// split into several ordinary tokens). Empty at the end of the text.
    pub fn literal(&mut self) -> (usize, &'a str) {
        self.skip_whitespace();
        let pos = self.pos;
        let rest = &self.src[pos..];
        let len = Self::run(rest, |c| {
            !(c.is_whitespace() || matches!(c, '(' | ')' | ',' | '\''))
        });
        self.pos += len;
        (pos, &rest[..len])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(src: &str) -> Vec<(Tok<'_>, usize)> {
        let mut lexer = Lexer::new(src);
        let mut out = Vec::new();
        loop {
            let t = lexer.next_token();
            out.push((t.tok, t.pos));
            if t.tok == Tok::End {
                return out;
            }
        }
    }

    #[test]
    fn splits_a_query() {
        assert_eq!(
            tokens("account.name='O''Brien' AND(data.n>=-2.5,x!=1)"),
            vec![
                (Tok::Word("account.name"), 0),
                (Tok::Op("="), 12),
                (
                    Tok::Quoted {
                        inner: "O''Brien",
                        closed: true
                    },
                    13
                ),
                (Tok::Word("AND"), 24),
                (Tok::LParen, 27),
                (Tok::Word("data.n"), 28),
                (Tok::Op(">="), 34),
                (Tok::Number("-2.5"), 36),
                (Tok::Comma, 40),
                (Tok::Word("x"), 41),
                (Tok::Op("!="), 42),
                (Tok::Number("1"), 44),
                (Tok::RParen, 45),
                (Tok::End, 46),
            ]
        );
    }

    #[test]
    fn odd_input_becomes_tokens_not_errors() {
        assert_eq!(
            tokens(" 'it''s"),
            vec![
                (
                    Tok::Quoted {
                        inner: "it''s",
                        closed: false
                    },
                    1
                ),
                (Tok::End, 7),
            ]
        );
        assert_eq!(
            tokens("é 1.2.3x =<"),
            vec![
                (Tok::Other, 0),
                (Tok::Number("1.2.3x"), 3),
                (Tok::Op("=<"), 10),
                (Tok::End, 12),
            ]
        );
        assert_eq!(
            tokens("''"),
            vec![
                (
                    Tok::Quoted {
                        inner: "",
                        closed: true
                    },
                    0
                ),
                (Tok::End, 2)
            ]
        );
    }

    #[test]
    fn date_and_time_literals_are_read_whole() {
        let mut lexer = Lexer::new("TIME  2026-01-01T00:00:00.5+02:00)");
        assert_eq!(lexer.next_token().tok, Tok::Word("TIME"));
        assert_eq!(lexer.literal(), (6, "2026-01-01T00:00:00.5+02:00"));
        assert_eq!(lexer.next_token().tok, Tok::RParen);
        assert_eq!(lexer.literal(), (34, ""));
    }
}
