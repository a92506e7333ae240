//! A checking tokenizer for one JSON value as it streams in: the only pass over a list element's
//! bytes before it is built. It checks the value strictly (structure, string escapes, no raw
//! control characters in strings, the number grammar, the literals; UTF-8 is left to one
//! `str::from_utf8` over the finished value), finds where it ends, and leaves a tape of its
//! tokens: every object and array with where its contents end, every member name, string and
//! scalar. On the way it marks, on each object and array, member names equal to the caller's
//! [`Needles`] and any `\u` or `\/` escape (which could spell such a name otherwise), so the
//! builder can tell which nested values anything can reach without reading them again. The scan
//! resumes where the buffer ended, even inside a string or a number, so no byte is read twice
//! however the value is cut into frames.

use memchr::memchr2;

/// Nesting deeper than this is refused, as serde_json refuses it (the builder recurses).
const MAX_DEPTH: usize = 127;

/// What a token is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Object,
    Array,
    /// A member name.
    Key,
    String,
    /// A number or a literal.
    Scalar,
}

/// One token of the tape; positions are from the value's first byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token {
    pub kind: Kind,
    /// A string or member name with backslash escapes (to be unescaped by serde_json).
    pub escaped: bool,
    pub start: usize,
    /// Past the token: past the closing quote or bracket, or the number's last digit.
    pub end: usize,
    /// The index of the token after this value (after an object's or array's contents).
    pub next: usize,
    /// Objects and arrays: the needles' bits of every member name within, and the escape bit.
    pub bits: u64,
}

/// Member names to mark, each with its bits, and the bit for escapes.
#[derive(Default)]
pub struct Needles {
    /// As they appear between the quotes (JSON-escaped the way serde_json writes them).
    names: Vec<(Box<[u8]>, u64)>,
    /// Bit `n` set: some name is `n` bytes long (names of 64 bytes or more are always compared).
    lengths: u64,
    escape: u64,
}

impl Needles {
    /// Marks `names` (their text between the quotes) and escapes with `escape`.
    pub fn new(names: Vec<(Box<[u8]>, u64)>, escape: u64) -> Self {
        let lengths = names.iter().filter(|(n, _)| n.len() < 64).fold(0, |all, (n, _)| all | 1 << n.len());
        Needles { names, lengths, escape }
    }

    fn find(&self, name: &[u8]) -> u64 {
        if name.len() < 64 && self.lengths & 1 << name.len() == 0 {
            return 0;
        }
        self.names.iter().filter(|(n, _)| **n == *name).fold(0, |all, (_, bits)| all | bits)
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Expect {
    #[default]
    Value,
    /// After `[`.
    ValueOrClose,
    /// After a comma in an object.
    Key,
    /// After `{`.
    KeyOrClose,
    Colon,
    /// After a value inside an object or array: a comma or the closing bracket.
    Next,
    /// The value is complete.
    Done,
}

/// A token the buffer ended in.
#[derive(Clone, Copy, Debug, Default)]
enum Lex {
    #[default]
    Between,
    String {
        key: bool,
        escaped: bool,
        bits: u64,
    },
    Number(Number),
}

/// Where a number is in its grammar: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Number {
    Start,
    Minus,
    Zero,
    Int,
    Dot,
    Fraction,
    E,
    ExponentSign,
    Exponent,
}

/// Tokenizes one value at a time, resuming where the input ran out.
#[derive(Default)]
pub struct Tokenizer {
    tokens: Vec<Token>,
    /// Indexes of the objects and arrays open around `at`.
    open: Vec<usize>,
    /// Where the value under way begins in the caller's buffer.
    start: usize,
    active: bool,
    /// Where the scan resumes, from `start`.
    at: usize,
    expect: Expect,
    lex: Lex,
    /// Where the token in `lex` began, from `start`.
    token_start: usize,
}

impl Tokenizer {
    /// Scans the value that begins at `start` of `buf`, resuming the scan left unfinished if it
    /// was of the same value: its end in `buf` once complete (the tape is then [`Self::tokens`]),
    /// `None` while more input is needed, or where the value is not JSON.
    pub fn scan(&mut self, buf: &[u8], start: usize, needles: &Needles) -> Result<Option<usize>, usize> {
        if !self.active || self.start != start {
            self.tokens.clear();
            self.open.clear();
            self.start = start;
            self.active = true;
            self.at = 0;
            self.expect = Expect::Value;
            self.lex = Lex::Between;
        }
        let text = buf.get(start..).unwrap_or_default();
        let result = self.run(text, needles);
        if !matches!(result, Ok(None)) {
            self.active = false;
        }
        result.map(|end| end.map(|end| start + end)).map_err(|at| start + at)
    }

    /// The tape of the value last completed.
    pub fn tokens(&self) -> &[Token] {
        &self.tokens
    }

    /// The caller dropped `by` bytes from the front of its buffer (never past the value).
    pub fn shift(&mut self, by: usize) {
        // Past the value cannot happen; were it to, the scan starts afresh rather than resume.
        match self.start.checked_sub(by) {
            Some(start) => self.start = start,
            None => self.active = false,
        }
    }

    fn run(&mut self, text: &[u8], needles: &Needles) -> Result<Option<usize>, usize> {
        loop {
            let complete = match self.lex {
                Lex::Between => true,
                Lex::String { key, escaped, bits } => self.string(text, needles, key, escaped, bits)?,
                Lex::Number(number) => self.number(text, number)?,
            };
            if !complete {
                return Ok(None);
            }
            if self.expect == Expect::Done {
                return Ok(Some(self.at));
            }
            self.at = skip_whitespace(text, self.at);
            let Some(&byte) = text.get(self.at) else { return Ok(None) };
            if !self.step(text, byte)? {
                return Ok(None);
            }
        }
    }

    /// Reads the token that begins with `byte`; false when more input is needed.
    fn step(&mut self, text: &[u8], byte: u8) -> Result<bool, usize> {
        match (self.expect, byte) {
            (Expect::Next, b',') => {
                self.at += 1;
                let object = self.open.last().is_some_and(|&i| self.tokens[i].kind == Kind::Object);
                self.expect = if object { Expect::Key } else { Expect::Value };
            }
            (Expect::Next | Expect::KeyOrClose, b'}') | (Expect::Next | Expect::ValueOrClose, b']') => {
                self.close(byte)?
            }
            (Expect::Colon, b':') => {
                self.at += 1;
                self.expect = Expect::Value;
            }
            (Expect::Key | Expect::KeyOrClose, b'"') => self.begin(Lex::String { key: true, escaped: false, bits: 0 }),
            (Expect::Value | Expect::ValueOrClose, _) => return self.value(text, byte),
            _ => return Err(self.at),
        }
        Ok(true)
    }

    fn value(&mut self, text: &[u8], byte: u8) -> Result<bool, usize> {
        let at = self.at;
        match byte {
            b'{' | b'[' => {
                if self.open.len() >= MAX_DEPTH {
                    return Err(at);
                }
                let (kind, expect) =
                    if byte == b'{' { (Kind::Object, Expect::KeyOrClose) } else { (Kind::Array, Expect::ValueOrClose) };
                self.open.push(self.tokens.len());
                self.push(kind, false, at, at, 0);
                self.at += 1;
                self.expect = expect;
            }
            b'"' => self.begin(Lex::String { key: false, escaped: false, bits: 0 }),
            b'-' | b'0'..=b'9' => self.begin(Lex::Number(Number::Start)),
            _ => {
                let word: &[u8] = match byte {
                    b't' => b"true",
                    b'f' => b"false",
                    b'n' => b"null",
                    _ => return Err(at),
                };
                let rest = &text[at..];
                let seen = word.len().min(rest.len());
                if rest[..seen] != word[..seen] {
                    return Err(at);
                }
                if seen < word.len() {
                    return Ok(false);
                }
                self.push(Kind::Scalar, false, at, at + word.len(), 0);
                self.at += word.len();
                self.finished();
            }
        }
        Ok(true)
    }

    fn begin(&mut self, lex: Lex) {
        self.token_start = self.at;
        self.lex = lex;
        if matches!(lex, Lex::String { .. }) {
            self.at += 1;
        }
    }

    /// Reads on in a string; false when more input is needed.
    fn string(
        &mut self,
        text: &[u8],
        needles: &Needles,
        key: bool,
        mut escaped: bool,
        mut bits: u64,
    ) -> Result<bool, usize> {
        loop {
            let rest = &text[self.at..];
            let Some(found) = memchr2(b'"', b'\\', rest) else {
                check_controls(rest).map_err(|n| self.at + n)?;
                self.at = text.len();
                self.lex = Lex::String { key, escaped, bits };
                return Ok(false);
            };
            check_controls(&rest[..found]).map_err(|n| self.at + n)?;
            self.at += found;
            if rest[found] == b'"' {
                break;
            }
            // The escape is read whole or not at all: the scan resumes at its backslash.
            let Some(&escape) = text.get(self.at + 1) else {
                self.lex = Lex::String { key, escaped, bits };
                return Ok(false);
            };
            match escape {
                b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't' => self.at += 2,
                b'/' => {
                    bits |= needles.escape;
                    self.at += 2;
                }
                b'u' => {
                    let Some(hex) = text.get(self.at + 2..self.at + 6) else {
                        self.lex = Lex::String { key, escaped, bits };
                        return Ok(false);
                    };
                    if !hex.iter().all(u8::is_ascii_hexdigit) {
                        return Err(self.at);
                    }
                    bits |= needles.escape;
                    self.at += 6;
                }
                _ => return Err(self.at),
            }
            escaped = true;
        }
        self.at += 1;
        let start = self.token_start;
        if key {
            bits |= needles.find(&text[start + 1..self.at - 1]);
        }
        self.lex = Lex::Between;
        let kind = if key { Kind::Key } else { Kind::String };
        self.push(kind, escaped, start, self.at, bits);
        if let Some(&container) = self.open.last() {
            self.tokens[container].bits |= bits;
        }
        if key {
            self.expect = Expect::Colon;
        } else {
            self.finished();
        }
        Ok(true)
    }

    /// Reads on in a number; false when more input is needed (a number ends only at the byte
    /// after it).
    fn number(&mut self, text: &[u8], mut state: Number) -> Result<bool, usize> {
        use Number::*;
        while let Some(&byte) = text.get(self.at) {
            state = match (state, byte) {
                (Start, b'-') => Minus,
                (Start | Minus, b'0') => Zero,
                (Start | Minus | Int, b'0'..=b'9') => Int,
                (Zero | Int, b'.') => Dot,
                (Dot | Fraction, b'0'..=b'9') => Fraction,
                (Zero | Int | Fraction, b'e' | b'E') => E,
                (E, b'+' | b'-') => ExponentSign,
                (E | ExponentSign | Exponent, b'0'..=b'9') => Exponent,
                (Zero | Int | Fraction | Exponent, _) => {
                    self.lex = Lex::Between;
                    self.push(Kind::Scalar, false, self.token_start, self.at, 0);
                    self.finished();
                    return Ok(true);
                }
                _ => return Err(self.at),
            };
            self.at += 1;
        }
        self.lex = Lex::Number(state);
        Ok(false)
    }

    fn close(&mut self, byte: u8) -> Result<(), usize> {
        let Some(index) = self.open.pop() else { return Err(self.at) };
        let next = self.tokens.len();
        let token = &mut self.tokens[index];
        let expected = if token.kind == Kind::Object { b'}' } else { b']' };
        if byte != expected {
            return Err(self.at);
        }
        self.at += 1;
        token.end = self.at;
        token.next = next;
        let bits = token.bits;
        if let Some(&parent) = self.open.last() {
            self.tokens[parent].bits |= bits;
        }
        self.finished();
        Ok(())
    }

    fn push(&mut self, kind: Kind, escaped: bool, start: usize, end: usize, bits: u64) {
        let next = self.tokens.len() + 1;
        self.tokens.push(Token { kind, escaped, start, end, next, bits });
    }

    /// A value is complete: the next comes after a comma, or the whole value is.
    fn finished(&mut self) {
        self.expect = if self.open.is_empty() { Expect::Done } else { Expect::Next };
    }
}

/// Where the first raw control character is, if any (JSON strings must escape them).
fn check_controls(bytes: &[u8]) -> Result<(), usize> {
    // A minimum without an early exit compiles to a vector loop.
    if bytes.iter().fold(u8::MAX, |least, &b| least.min(b)) >= 0x20 {
        return Ok(());
    }
    Err(bytes.iter().position(|&b| b < 0x20).unwrap_or(0))
}

pub fn skip_whitespace(buf: &[u8], mut at: usize) -> usize {
    while buf.get(at).is_some_and(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r')) {
        at += 1;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODE_NAME: u64 = 1;
    const ESCAPE: u64 = 2;

    fn needles() -> Needles {
        Needles::new(vec![(b"nodeName".as_slice().into(), NODE_NAME)], ESCAPE)
    }

    /// `text` scanned in the pieces cut at `cuts`: the end and the tape, or where it is not JSON.
    fn pieces(text: &[u8], cuts: &[usize]) -> Result<Option<(usize, Vec<Token>)>, usize> {
        let mut tokenizer = Tokenizer::default();
        let needles = needles();
        for &cut in cuts.iter().chain([&text.len()]) {
            if let Some(end) = tokenizer.scan(&text[..cut], 0, &needles)? {
                return Ok(Some((end, tokenizer.tokens().to_vec())));
            }
        }
        Ok(None)
    }

    fn scan(text: &str) -> Result<Option<(usize, Vec<Token>)>, usize> {
        pieces(text.as_bytes(), &[])
    }

    fn tape(text: &str) -> Vec<Token> {
        match scan(text) {
            Ok(Some((end, tokens))) => {
                assert_eq!(end, text.len(), "{text}");
                tokens
            }
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn values_of_every_kind_are_tokenized() {
        let tokens = tape(r#"{"a": [1, -2.5e+3, "x\"y", true, false, null, {}], "b":{"c":0}}"#);
        let kinds: Vec<Kind> = tokens.iter().map(|t| t.kind).collect();
        use Kind::*;
        let expected =
            [Object, Key, Array, Scalar, Scalar, String, Scalar, Scalar, Scalar, Object, Key, Object, Key, Scalar];
        assert_eq!(kinds, expected);
        assert_eq!((tokens[0].start, tokens[0].next), (0, tokens.len()));
        assert_eq!((tokens[2].next, tokens[9].next), (10, 10));
        assert!(tokens[5].escaped && !tokens[1].escaped);
        // A scalar alone ends only at the byte after it.
        assert_eq!(scan("12"), Ok(None));
        assert_eq!(scan("12 ").map(|t| t.map(|(end, _)| end)), Ok(Some(2)));
        assert_eq!(scan("true").map(|t| t.map(|(end, _)| end)), Ok(Some(4)));
    }

    #[test]
    fn invalid_json_is_refused_where_it_goes_wrong() {
        for bad in [
            r#"["\x"]"#,
            r#"["\u12g4"]"#,
            "[\"a\u{1}b\"]",
            "[\"line\nbreak\"]",
            "[\"tab\tinside\"]",
            "[01]",
            "[1.]",
            "[-]",
            "[1e]",
            "[1e+]",
            "[+1]",
            "[.5]",
            "[1.e5]",
            "[--1]",
            "[0x1]",
            "[1,]",
            "[,1]",
            "[1 2]",
            r#"{"a":1,}"#,
            r#"{"a" 1}"#,
            r#"{"a":}"#,
            r#"{1:2}"#,
            r#"{"a":1"b":2}"#,
            "[1}",
            r#"{"a":1]"#,
            "[trux]",
            "[nul,1]",
            "[True]",
            "}",
            "'a'",
        ] {
            assert!(scan(bad).is_err(), "{bad}");
        }
        let deep = "[".repeat(MAX_DEPTH + 1);
        assert!(scan(&deep).is_err());
        let deep_enough = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(scan(&deep_enough).is_ok_and(|t| t.is_some()));
    }

    #[test]
    fn unclosed_values_wait_for_more_input() {
        for open in ["[", r#"{"a":1"#, r#"{"a""#, r#"["abc"#, r#"["a\"#, r#"["\u00"#, "[tr", "[1.5e", "[-"] {
            assert_eq!(scan(open), Ok(None), "{open}");
        }
    }

    #[test]
    fn member_names_equal_to_needles_and_escapes_are_marked() {
        let text = r#"{"a":{"nodeName":1},"b":{"x":"nodeName"},"c":{"node\u004eame":1},"d":[{"nodeNames":2},{"nodeName":3}],"e":{"s":"a\/b"},"f":{"q":"\"\\\n"}}"#;
        let tokens = tape(text);
        let object = |key: &str| {
            let at = tokens.iter().position(|t| t.kind == Kind::Key && text[t.start..t.end] == format!("\"{key}\""));
            tokens[at.expect("the key is there") + 1]
        };
        assert_eq!(object("a").bits, NODE_NAME);
        assert_eq!(object("b").bits, 0, "a value is not a member name");
        assert_eq!(object("c").bits, ESCAPE, "an escaped name could be the needle");
        assert_eq!(object("d").bits, NODE_NAME, "marks reach the arrays and objects around them");
        assert_eq!(object("e").bits, ESCAPE);
        assert_eq!(object("f").bits, 0, "escapes that cannot spell a letter");
        assert_eq!(tokens[0].bits, NODE_NAME | ESCAPE);
    }

    #[test]
    fn values_cut_anywhere_give_the_same_tape() {
        let text = br#" {"metadata":{"name":"web-1","namespace":"acme\u002dweb","labels":{"a\"b":"\\"}},"n":[0,-1.25E-7,12345678901234567890,true,false,null],"s":"\/\b\f\r\t","nodeName":"x"}"#;
        let whole = pieces(text, &[]).map(|t| t.map(|(_, tokens)| tokens));
        assert!(whole.as_ref().is_ok_and(Option::is_some));
        let text = &text[1..];
        let once = pieces(text, &[]);
        for cut in 0..=text.len() {
            assert_eq!(pieces(text, &[cut]), once, "cut at {cut}");
        }
        let every: Vec<usize> = (1..text.len()).collect();
        assert_eq!(pieces(text, &every), once, "byte by byte");
    }

    #[test]
    fn errors_are_found_however_the_value_is_cut() {
        let text = b"{\"a\":[1,2],\"b\":\"x\x01\"}";
        let once = pieces(text, &[]);
        assert!(once.is_err());
        for cut in 0..=text.len() {
            assert_eq!(pieces(text, &[cut]), once, "cut at {cut}");
        }
    }
}
