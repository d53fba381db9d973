//! One error type for every operation on the disk. Each variant says whether anything
//! was written, because that is what an operator needs to know next.

use std::fmt;

#[derive(Debug)]
pub enum Error {
    /// A system call failed; `context` says what we were doing, on which path.
    Io {
        context: String,
        source: std::io::Error,
    },
    /// The request is wrong (a name, a size, an IQN, a CHAP secret...). Nothing was written.
    Invalid(String),
    /// Init found something on the disk and was not told to wipe it. Nothing was written.
    NotEmpty(String),
    /// The disk is not (or no longer recognisably) a STAR array disk. Nothing was written.
    NotOurs(String),
    /// The array config changed on disk since the caller read it. Nothing was written.
    GenerationMismatch { expected: u64, found: u64 },
    /// Neither copy of the array config can be trusted. Nothing was written.
    NoValidConfig { copy_a: String, copy_b: String },
    /// A change was made in part: the message says what is on the disk now.
    Partial(String),
}

impl Error {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { context, source } => write!(f, "{context}: {source}"),
            Error::Invalid(m) | Error::NotEmpty(m) | Error::NotOurs(m) | Error::Partial(m) => {
                f.write_str(m)
            }
            Error::GenerationMismatch { expected, found } => write!(
                f,
                "the array config changed on disk (generation {found}, expected {expected}): \
                 another change was made meanwhile; read it again and retry"
            ),
            Error::NoValidConfig { copy_a, copy_b } => write!(
                f,
                "no valid array config on disk: copy A: {copy_a}; copy B: {copy_b}"
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
