//! The static token file, in kube-apiserver's `--token-auth-file` format
//! (`token,user,uid,"group1,group2"`), for development and tests.

use std::collections::HashMap;
use std::path::Path;

use super::Identity;

/// Why a token file was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    /// The file could not be read.
    #[error("{file}: cannot read: {source}")]
    Read { file: String, source: std::io::Error },
    /// A line does not have at least `token,user`.
    #[error("{file}:{line}: expected `token,user[,uid[,\"groups\"]]`")]
    Malformed { file: String, line: usize },
    /// The same token appears twice.
    #[error("{file}:{line}: duplicate token")]
    Duplicate { file: String, line: usize },
}

/// Tokens and the identities they stand for. Its `Debug` shows identities, never tokens.
#[derive(Default)]
pub struct StaticTokens {
    by_token: HashMap<String, Identity>,
}

impl std::fmt::Debug for StaticTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.by_token.values().map(|identity| &identity.user)).finish()
    }
}

impl StaticTokens {
    /// Reads a token file.
    pub fn load(path: &Path) -> Result<Self, TokenFileError> {
        let file = path.display().to_string();
        let text =
            std::fs::read_to_string(path).map_err(|source| TokenFileError::Read { file: file.clone(), source })?;
        Self::parse(&file, &text)
    }

    /// Parses the text of a token file called `file`.
    pub fn parse(file: &str, text: &str) -> Result<Self, TokenFileError> {
        let mut by_token = HashMap::new();
        for (index, line) in text.lines().enumerate() {
            let line_no = index + 1;
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            let fields = split_csv(line);
            let (Some(token), Some(user)) = (fields.first(), fields.get(1)) else {
                return Err(TokenFileError::Malformed { file: file.into(), line: line_no });
            };
            if token.is_empty() || user.is_empty() {
                return Err(TokenFileError::Malformed { file: file.into(), line: line_no });
            }
            let identity = Identity {
                user: user.clone(),
                uid: fields.get(2).filter(|uid| !uid.is_empty()).cloned(),
                groups: fields
                    .get(3)
                    .map(|g| g.split(',').map(str::trim).filter(|g| !g.is_empty()).map(String::from).collect())
                    .unwrap_or_default(),
                extra: Default::default(),
            };
            if by_token.insert(token.clone(), identity).is_some() {
                return Err(TokenFileError::Duplicate { file: file.into(), line: line_no });
            }
        }
        Ok(Self { by_token })
    }

    /// The identity `token` stands for.
    pub fn lookup(&self, token: &str) -> Option<&Identity> {
        self.by_token.get(token)
    }

    /// The first token of `user`, for writing a kubeconfig.
    pub fn token_of(&self, user: &str) -> Option<&str> {
        let mut tokens: Vec<&String> =
            self.by_token.iter().filter(|(_, id)| id.user == user).map(|(token, _)| token).collect();
        tokens.sort();
        tokens.first().map(|t| t.as_str())
    }
}

/// Splits one CSV line; double quotes group commas, `""` is a literal quote.
fn split_csv(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut field)),
            (c, _) => field.push(c),
        }
    }
    fields.push(field);
    fields.into_iter().map(|f| f.trim().to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_apiserver_format() {
        let tokens = StaticTokens::parse("t.csv", "# users\nt1,alice,u1,\"dev,ops\"\nt2,bob\n\n").unwrap();
        let alice = tokens.lookup("t1").unwrap();
        assert_eq!(alice.user, "alice");
        assert_eq!(alice.uid.as_deref(), Some("u1"));
        assert_eq!(alice.groups, ["dev", "ops"]);
        assert!(tokens.lookup("t2").unwrap().groups.is_empty());
        assert!(tokens.lookup("t3").is_none());
        assert_eq!(tokens.token_of("bob"), Some("t2"));
    }

    #[test]
    fn debug_output_never_shows_a_token() {
        let tokens = StaticTokens::parse(
            "t.csv",
            "secret-token-1,alice
",
        )
        .unwrap();
        let shown = format!("{tokens:?} {:?}", crate::auth::Credential::Bearer("secret-token-2".into()));
        assert!(!shown.contains("secret-token"), "{shown}");
        assert!(shown.contains("alice"), "{shown}");
    }

    #[test]
    fn malformed_and_duplicate_lines_name_the_line() {
        let err = StaticTokens::parse("t.csv", "t1,alice\nonlytoken\n").unwrap_err().to_string();
        assert_eq!(err, "t.csv:2: expected `token,user[,uid[,\"groups\"]]`");
        let err = StaticTokens::parse("t.csv", "t1,alice\nt1,bob\n").unwrap_err().to_string();
        assert_eq!(err, "t.csv:2: duplicate token");
    }
}
