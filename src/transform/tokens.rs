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
//!
//! It is the one pass over every byte of every item, so it is written for speed on compact
//! Kubernetes JSON: one loop reads token after token with its state in locals, taking a member
//! name's colon and a value's comma without another round through its dispatch; strings are
//! scanned 8 bytes at a time for their end, escapes and control characters together; member
//! names are compared only with needles of their length and first bytes.

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
    /// As they appear between the quotes (JSON-escaped the way serde_json writes them), shortest
    /// first, each with its first bytes as [`head`] reads them: most member names of a needle's
    /// length differ from it there, so they are told apart without a call to compare bytes.
    names: Vec<(u64, Box<[u8]>, u64)>,
    /// Where the names `n` bytes long begin in `names` for `n` below 64, and at 64 where the
    /// longer ones do; empty when there are no names.
    from: Vec<usize>,
    /// Bit `n` set: some name is `n` bytes long (names of 64 bytes or more are always compared).
    lengths: u64,
    escape: u64,
}

impl Needles {
    /// Marks `names` (their text between the quotes) and escapes with `escape`.
    pub fn new(names: Vec<(Box<[u8]>, u64)>, escape: u64) -> Self {
        let lengths = names.iter().filter(|(n, _)| n.len() < 64).fold(0, |all, (n, _)| all | 1 << n.len());
        let mut names: Vec<_> = names.into_iter().map(|(name, bits)| (head(&name), name, bits)).collect();
        names.sort_by_key(|(_, name, _)| name.len());
        // Without names (answers with no read mask) `find` never reads the index: none is kept.
        let from = if names.is_empty() {
            Vec::new()
        } else {
            (0..=64).map(|len| names.partition_point(|(_, name, _)| name.len() < len)).collect()
        };
        Needles { names, from, lengths, escape }
    }

    #[inline(always)]
    fn find(&self, name: &[u8]) -> u64 {
        if name.len() < 64 && self.lengths & 1 << name.len() == 0 {
            return 0;
        }
        let len = name.len().min(64);
        let from = self.from.get(len).copied().unwrap_or_default();
        let to = if len < 64 { self.from.get(len + 1).copied().unwrap_or_default() } else { self.names.len() };
        let head = head(name);
        let candidates = self.names.get(from..to).unwrap_or_default();
        candidates.iter().filter(|(h, n, _)| *h == head && **n == *name).fold(0, |all, (_, _, bits)| all | bits)
    }
}

/// The first 8 bytes of `name` as a number (fewer, zero-padded, if it is shorter).
#[inline(always)]
fn head(name: &[u8]) -> u64 {
    match name.first_chunk::<8>() {
        Some(first) => u64::from_le_bytes(*first),
        None => name.iter().rev().fold(0, |head, &b| head << 8 | u64::from(b)),
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

    /// Bytes held for the tape.
    #[cfg(test)]
    pub fn allocated(&self) -> usize {
        self.tokens.capacity() * std::mem::size_of::<Token>() + self.open.capacity() * std::mem::size_of::<usize>()
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

    /// Finishes the token the last buffer ended in, then reads token after token in one loop.
    /// The position, what comes next and whether the innermost container is an object live in
    /// locals (registers) while the loop runs and go back to the fields only where it stops.
    /// On an error the fields are left as they are: the scan is over (see [`Self::scan`]).
    fn run(&mut self, text: &[u8], needles: &Needles) -> Result<Option<usize>, usize> {
        let mut at = self.at;
        let mut expect = self.expect;
        match self.lex {
            Lex::Between => {}
            Lex::String { key, mut escaped, mut bits } => {
                if !string(text, &mut at, &mut escaped, &mut bits, needles.escape)? {
                    self.at = at;
                    self.lex = Lex::String { key, escaped, bits };
                    return Ok(None);
                }
                self.lex = Lex::Between;
                expect = self.string_token(text, needles, key, escaped, bits, self.token_start, at);
            }
            Lex::Number(mut state) => {
                if !number(text, &mut at, &mut state)? {
                    self.at = at;
                    self.lex = Lex::Number(state);
                    return Ok(None);
                }
                self.lex = Lex::Between;
                self.push(Kind::Scalar, false, self.token_start, at, 0);
                expect = self.finished();
            }
        }
        let mut object = self.open.last().is_some_and(|&i| self.tokens[i].kind == Kind::Object);
        let result = loop {
            if expect == Expect::Done {
                break Some(at);
            }
            let Some(&byte) = text.get(at) else { break None };
            match (expect, byte) {
                (_, b' ' | b'\t' | b'\n' | b'\r') => at += 1,
                (Expect::Key | Expect::KeyOrClose | Expect::Value | Expect::ValueOrClose, b'"') => {
                    let key = matches!(expect, Expect::Key | Expect::KeyOrClose);
                    let start = at;
                    at += 1;
                    let (mut escaped, mut bits) = (false, 0);
                    if !string(text, &mut at, &mut escaped, &mut bits, needles.escape)? {
                        self.token_start = start;
                        self.lex = Lex::String { key, escaped, bits };
                        break None;
                    }
                    expect = self.string_token(text, needles, key, escaped, bits, start, at);
                }
                (Expect::Colon, b':') => {
                    at += 1;
                    expect = Expect::Value;
                }
                (Expect::Next, b',') => {
                    at += 1;
                    expect = if object { Expect::Key } else { Expect::Value };
                }
                (Expect::Next | Expect::KeyOrClose, b'}') | (Expect::Next | Expect::ValueOrClose, b']') => {
                    let Some(index) = self.open.pop() else { return Err(at) };
                    if byte != if object { b'}' } else { b']' } {
                        return Err(at);
                    }
                    let next = self.tokens.len();
                    let token = &mut self.tokens[index];
                    at += 1;
                    token.end = at;
                    token.next = next;
                    let bits = token.bits;
                    expect = match self.open.last() {
                        Some(&parent) => {
                            let parent = &mut self.tokens[parent];
                            parent.bits |= bits;
                            object = parent.kind == Kind::Object;
                            Expect::Next
                        }
                        None => Expect::Done,
                    };
                }
                (Expect::Value | Expect::ValueOrClose, b'{' | b'[') => {
                    if self.open.len() >= MAX_DEPTH {
                        return Err(at);
                    }
                    object = byte == b'{';
                    let kind = if object { Kind::Object } else { Kind::Array };
                    self.open.push(self.tokens.len());
                    self.push(kind, false, at, at, 0);
                    at += 1;
                    expect = if object { Expect::KeyOrClose } else { Expect::ValueOrClose };
                }
                (Expect::Value | Expect::ValueOrClose, b'-' | b'0'..=b'9') => {
                    let start = at;
                    let mut state = Number::Start;
                    if !number(text, &mut at, &mut state)? {
                        self.token_start = start;
                        self.lex = Lex::Number(state);
                        break None;
                    }
                    self.push(Kind::Scalar, false, start, at, 0);
                    expect = self.finished();
                }
                (Expect::Value | Expect::ValueOrClose, b't' | b'f' | b'n') => {
                    let word: &[u8] = match byte {
                        b't' => b"true",
                        b'f' => b"false",
                        _ => b"null",
                    };
                    let rest = &text[at..];
                    if !rest.starts_with(word) {
                        let seen = word.len().min(rest.len());
                        if rest[..seen] != word[..seen] {
                            return Err(at);
                        }
                        // A literal is read whole or not at all: the scan resumes at its first
                        // letter.
                        break None;
                    }
                    self.push(Kind::Scalar, false, at, at + word.len(), 0);
                    at += word.len();
                    expect = self.finished();
                }
                _ => return Err(at),
            }
            // In compact JSON a member name is followed by its colon and a value by a comma:
            // read them here, without another round through the dispatch above.
            match (expect, text.get(at)) {
                (Expect::Colon, Some(b':')) => {
                    at += 1;
                    expect = Expect::Value;
                }
                (Expect::Next, Some(b',')) => {
                    at += 1;
                    expect = if object { Expect::Key } else { Expect::Value };
                }
                _ => {}
            }
        };
        self.at = at;
        self.expect = expect;
        Ok(result)
    }

    /// Records the string or member name from `start` to `end` (past its closing quote) and
    /// marks it on the container around it; what comes after it.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn string_token(
        &mut self,
        text: &[u8],
        needles: &Needles,
        key: bool,
        escaped: bool,
        mut bits: u64,
        start: usize,
        end: usize,
    ) -> Expect {
        if key {
            bits |= needles.find(&text[start + 1..end - 1]);
        }
        self.push(if key { Kind::Key } else { Kind::String }, escaped, start, end, bits);
        if bits != 0
            && let Some(&container) = self.open.last()
        {
            self.tokens[container].bits |= bits;
        }
        if key { Expect::Colon } else { self.finished() }
    }

    #[inline(always)]
    fn push(&mut self, kind: Kind, escaped: bool, start: usize, end: usize, bits: u64) {
        let next = self.tokens.len() + 1;
        self.tokens.push(Token { kind, escaped, start, end, next, bits });
    }

    /// A value is complete: the next comes after a comma, or the whole value is.
    #[inline(always)]
    fn finished(&self) -> Expect {
        if self.open.is_empty() { Expect::Done } else { Expect::Next }
    }
}

/// Reads on in a string from `at` (just after its opening quote, or where the last buffer ended
/// in it): true with `at` past its closing quote, false when more input is needed, with `at`
/// where to resume, or where the string goes wrong (a raw control character, a bad escape).
#[inline(always)]
fn string(text: &[u8], at: &mut usize, escaped: &mut bool, bits: &mut u64, escape_bit: u64) -> Result<bool, usize> {
    loop {
        let found = *at + special(&text[*at..]);
        let Some(&byte) = text.get(found) else {
            *at = text.len();
            return Ok(false);
        };
        *at = found;
        match byte {
            b'"' => {
                *at += 1;
                return Ok(true);
            }
            b'\\' => {}
            _ => return Err(found),
        }
        // The escape is read whole or not at all: the scan resumes at its backslash.
        let Some(&escape) = text.get(found + 1) else { return Ok(false) };
        match escape {
            b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't' => *at += 2,
            b'/' => {
                *bits |= escape_bit;
                *at += 2;
            }
            b'u' => {
                let Some(hex) = text.get(found + 2..found + 6) else { return Ok(false) };
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return Err(found);
                }
                *bits |= escape_bit;
                *at += 6;
            }
            _ => return Err(found),
        }
        *escaped = true;
    }
}

/// Reads on in a number from `at` in `state`: true with `at` past it, false when more input is
/// needed (a number ends only at the byte after it), or where it breaks the grammar.
#[inline(always)]
fn number(text: &[u8], at: &mut usize, state: &mut Number) -> Result<bool, usize> {
    use Number::*;
    while let Some(&byte) = text.get(*at) {
        *state = match (*state, byte) {
            (Start, b'-') => Minus,
            (Start | Minus, b'0') => Zero,
            (Start | Minus | Int, b'0'..=b'9') => Int,
            (Zero | Int, b'.') => Dot,
            (Dot | Fraction, b'0'..=b'9') => Fraction,
            (Zero | Int | Fraction, b'e' | b'E') => E,
            (E, b'+' | b'-') => ExponentSign,
            (E | ExponentSign | Exponent, b'0'..=b'9') => Exponent,
            (Zero | Int | Fraction | Exponent, _) => return Ok(true),
            _ => return Err(*at),
        };
        *at += 1;
    }
    Ok(false)
}

/// Whether `byte` ends a run of plain string bytes: a quote, a backslash or a raw control
/// character (which JSON strings must escape).
fn is_special(byte: u8) -> bool {
    byte == b'"' || byte == b'\\' || byte < 0x20
}

/// Where the first quote, backslash or raw control character of `bytes` is, or its length: one
/// pass finds the string's end and checks its bytes, 8 at a time in a `u64`. In each of the three
/// masks a byte's top bit is set where it matches; a borrow can set it in bytes above a match
/// too, never below, so the lowest bit set (the bytes read little-endian) is the first match.
/// (SSE2, 16 bytes at a time, measured no faster: Kubernetes' strings are short.)
#[inline(always)]
fn special(bytes: &[u8]) -> usize {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let mut at = 0;
    while let Some(word) = bytes.get(at..).and_then(<[u8]>::first_chunk::<8>) {
        let x = u64::from_le_bytes(*word);
        let quote = zero(x ^ (ONES * u64::from(b'"')));
        let backslash = zero(x ^ (ONES * u64::from(b'\\')));
        let control = x.wrapping_sub(ONES * 0x20) & !x & HIGH;
        let mask = quote | backslash | control;
        if mask != 0 {
            return at + mask.trailing_zeros() as usize / 8;
        }
        at += 8;
    }
    at + bytes[at..].iter().position(|&b| is_special(b)).unwrap_or(bytes.len() - at)
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

    #[test]
    fn errors_are_found_where_they_were() {
        // Positions as the tokenizer found them before its one-loop rewrite.
        for (bad, at) in [
            (r#"["\x"]"#, 2),
            (r#"["\u12g4"]"#, 2),
            ("[\"a\u{1}b\"]", 3),
            ("[\"line\nbreak\"]", 6),
            ("[\"tab\tinside\"]", 5),
            ("[01]", 2),
            ("[1.]", 3),
            ("[-]", 2),
            ("[1e]", 3),
            ("[1e+]", 4),
            ("[+1]", 1),
            ("[.5]", 1),
            ("[1.e5]", 3),
            ("[--1]", 2),
            ("[0x1]", 2),
            ("[1,]", 3),
            ("[,1]", 1),
            ("[1 2]", 3),
            (r#"{"a":1,}"#, 7),
            (r#"{"a" 1}"#, 5),
            (r#"{"a":}"#, 5),
            (r#"{1:2}"#, 1),
            (r#"{"a":1"b":2}"#, 6),
            ("[1}", 2),
            (r#"{"a":1]"#, 6),
            ("[trux]", 1),
            ("[nul,1]", 1),
            ("[True]", 1),
            ("}", 0),
            ("'a'", 0),
        ] {
            for cut in 0..=bad.len() {
                assert_eq!(pieces(bad.as_bytes(), &[cut]), Err(at), "{bad} cut at {cut}");
            }
        }
    }

    /// The first quote, backslash or control character, one byte at a time.
    fn first_special(bytes: &[u8]) -> usize {
        bytes.iter().position(|&b| is_special(b)).unwrap_or(bytes.len())
    }

    #[test]
    fn string_ends_are_found_at_every_position() {
        for byte in 0..=u8::MAX {
            for at in 0..40 {
                for len in [at + 1, at + 9, 48] {
                    // Plain bytes around it, from both ends of the range a borrow could cross.
                    let mut bytes: Vec<u8> = (0..len).map(|i| [b'a', 0x7f, 0xff, 0x20, b'#', b'['][i % 6]).collect();
                    bytes[at] = byte;
                    for from in 0..at.min(16) {
                        let found = special(&bytes[from..]);
                        assert_eq!(found, first_special(&bytes[from..]), "{byte:#x} at {at} from {from}");
                    }
                }
            }
        }
        assert_eq!(special(b""), 0);
        assert_eq!(special(&[b'a'; 40]), 40);
        assert_eq!(special(b"\"\\\x00"), 0);
    }

    #[test]
    fn strings_are_read_with_quotes_backslashes_and_controls_anywhere() {
        for at in 0..40 {
            let plain = "a".repeat(at);
            // The string's content begins at 2; whitespace before moves it against 8-byte words.
            for lead in ["", " ", "   ", "       "] {
                let text = format!("{lead}[\"{plain}\", \"{plain}\\n{plain}\\u0041\", \"{plain}\\\\\"]");
                let text = &text.as_bytes()[lead.len()..];
                let tokens = match pieces(text, &[]) {
                    Ok(Some((end, tokens))) => {
                        assert_eq!(end, text.len());
                        tokens
                    }
                    other => panic!("{at}: {other:?}"),
                };
                assert_eq!((tokens[1].start, tokens[1].end, tokens[1].escaped), (1, at + 3, false));
                assert_eq!((tokens[2].end, tokens[2].escaped, tokens[0].bits), (3 * at + 15, true, ESCAPE));
                assert_eq!((tokens[3].end, tokens[3].escaped), (text.len() - 1, true));
                let every: Vec<usize> = (1..text.len()).collect();
                assert_eq!(pieces(text, &every), pieces(text, &[]), "{at} byte by byte");
                for bad in [b"\x00".as_slice(), b"\x1f", b"\n", b"\\x", b"\\u12x4"] {
                    let text = [format!("{lead}[\"{plain}").as_bytes(), bad, b"a\"]"].concat();
                    let text = &text[lead.len()..];
                    for cut in [0, 1, 2, at + 1, at + 2, at + 3, text.len()] {
                        assert_eq!(pieces(text, &[cut]), Err(at + 2), "{at} {bad:?} cut at {cut}");
                    }
                }
            }
        }
    }

    #[test]
    fn needles_of_every_length_are_told_apart() {
        let long = "n".repeat(70);
        let names = ["", "a", "abcdefg", "abcdefgh", "abcdefgi", "abcdefghi", "abcdefghij", &long, &format!("{long}x")];
        let needles = Needles::new(names.iter().enumerate().map(|(n, s)| (s.as_bytes().into(), 1 << n)).collect(), 0);
        for (n, name) in names.iter().enumerate() {
            assert_eq!(needles.find(name.as_bytes()), 1 << n, "{name}");
        }
        for other in ["b", "abcdefh", "abcdefgj", "bbcdefgh", "abcdefghj", "abcdefgh ", "nnnn", &format!("{long}y")] {
            assert_eq!(needles.find(other.as_bytes()), 0, "{other}");
        }
        let twice = Needles::new(vec![(b"spec".as_slice().into(), 1), (b"spec".as_slice().into(), 4)], 0);
        assert_eq!(twice.find(b"spec"), 5);
        assert_eq!(Needles::default().find(long.as_bytes()), 0);
        assert_eq!(Needles::default().find(b""), 0);
    }
}
