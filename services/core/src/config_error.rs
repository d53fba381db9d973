//! Errors in a configuration file, each with the file, line, column and key it is about,
//! shared by every STAR file format (star-init's services file, star.toml).

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One mistake in the services file, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based; 0 when the error is not about a place in the file (it could not be read).
    pub line: usize,
    pub column: usize,
    /// The key the mistake is about, as written in the file (e.g. `service.after`).
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        match &self.key {
            Some(key) => write!(f, ": {key}: {}", self.message),
            None => write!(f, ": {}", self.message),
        }
    }
}

/// Every mistake found; the file is refused as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Turns byte offsets into line and column for one file.
pub(crate) struct Locator<'a> {
    pub file: &'a Path,
    pub text: &'a str,
}

impl Locator<'_> {
    pub fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let column = before.rfind('\n').map_or(offset, |nl| offset - nl - 1) + 1;
        (line, column)
    }

    pub fn error(&self, span: Range<usize>, key: &str, message: impl Into<String>) -> ConfigError {
        let (line, column) = self.position(span.start);
        ConfigError {
            file: self.file.to_path_buf(),
            line,
            column,
            key: Some(key.to_string()),
            message: message.into(),
        }
    }

    /// A serde/TOML error: find the key from the message (unknown or missing field) or
    /// from the `key = value` line the error points at (wrong type).
    pub fn toml_error(&self, err: &toml::de::Error) -> ConfigError {
        let span = err.span().unwrap_or(0..0);
        let (line, column) = self.position(span.start);
        let message = err.message().trim().to_string();
        let key = field_in_message(&message).or_else(|| {
            let line_text = self.text.lines().nth(line.saturating_sub(1))?;
            let (left, _) = line_text.split_once('=')?;
            let key = left.trim().trim_matches('"');
            (!key.is_empty() && !key.starts_with('[')).then(|| key.to_string())
        });
        ConfigError {
            file: self.file.to_path_buf(),
            line,
            column,
            key,
            message,
        }
    }
}

fn field_in_message(message: &str) -> Option<String> {
    for prefix in ["unknown field `", "missing field `", "duplicate key `"] {
        if let Some(rest) = message.strip_prefix(prefix) {
            return rest.split('`').next().map(str::to_string);
        }
    }
    None
}

/// Reads a configuration file; a failure is reported like any other mistake in it.
pub fn read_config_file(path: &Path, what: &str) -> Result<String, ConfigErrors> {
    std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: path.to_path_buf(),
            line: 0,
            column: 0,
            key: None,
            message: format!("cannot read {what}: {e}"),
        }])
    })
}
