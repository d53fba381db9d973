//! The administrator's password hash (star.toml's `[admin] password_hash`): its shape,
//! checked when star.toml loads so that a mistyped hash is refused at boot rather than at
//! the first login, and the check of a typed password against it at the console.
//!
//! The kinds are those `mkpasswd` and `/etc/shadow` use: SHA-512-crypt (`$6$`),
//! SHA-256-crypt (`$5$`) and yescrypt (`$y$`), through RustCrypto's crates.

use sha_crypt::{PasswordVerifier as _, ShaCrypt};
use yescrypt::Yescrypt;

/// The kinds of hash star.toml may hold, as they begin.
pub const KINDS: &str = "$6$ (SHA-512-crypt), $5$ (SHA-256-crypt) or $y$ (yescrypt)";

/// How a password for star.toml is made.
pub const HOW_TO_MAKE: &str = "make one with `mkpasswd -m sha-512` or `mkpasswd -m yescrypt`";

/// crypt(3)'s base-64 alphabet.
fn is_crypt64(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/')
}

/// Checks that `hash` is a complete hash of a supported kind; the error says what is wrong
/// with it. Cheap: nothing is computed.
pub fn check_hash(hash: &str) -> Result<(), String> {
    let fields: Vec<&str> = hash.split('$').collect();
    // "$6$salt$digest" splits into "", "6", "salt", "digest" (and "rounds=N" before salt).
    if fields.first() != Some(&"") || fields.len() < 4 {
        return Err(format!("is not a crypt(3) hash: expected {KINDS}"));
    }
    let (kind, rest) = (fields[1], &fields[2..]);
    match kind {
        "6" | "5" => {
            let (rounds, salt, digest) = match rest {
                [r, s, d] if r.starts_with("rounds=") => (Some(*r), *s, *d),
                [s, d] => (None, *s, *d),
                _ => return Err(format!("${kind}$ hash has {} fields, expected [rounds=N$]salt$digest", rest.len())),
            };
            if let Some(r) = rounds {
                match r["rounds=".len()..].parse::<u32>() {
                    Ok(n) if (1000..=999_999_999).contains(&n) => {}
                    _ => return Err(format!("${kind}$ hash: {r} is not a round count from 1000 to 999999999")),
                }
            }
            if salt.is_empty() || salt.len() > 16 {
                return Err(format!("${kind}$ hash: the salt must be 1 to 16 characters, not {}", salt.len()));
            }
            let want = if kind == "6" { 86 } else { 43 };
            if digest.len() != want || !is_crypt64(digest) {
                return Err(format!(
                    "${kind}$ hash: the digest must be {want} characters of [./0-9A-Za-z] (it has {}): the hash was cut or mistyped",
                    digest.len()
                ));
            }
            Ok(())
        }
        "y" => match rest {
            [params, salt, digest]
                if is_crypt64(params) && is_crypt64(salt) && digest.len() == 43 && is_crypt64(digest) =>
            {
                Ok(())
            }
            _ => Err("$y$ hash: expected $y$params$salt$digest with a 43-character digest: the hash was cut or mistyped".into()),
        },
        "2a" | "2b" | "2y" | "1" => Err(format!(
            "${kind}$ hashes are not accepted (weaker or unsupported here): use {KINDS}"
        )),
        other => Err(format!("${other}$ is not a supported kind of hash: use {KINDS}")),
    }
}

/// Whether `password` is the one `hash` was made from. An error means the hash itself is
/// unusable (it passed [`check_hash`] but the crate refuses its parameters).
pub fn verify(password: &str, hash: &str) -> Result<bool, String> {
    check_hash(hash)?;
    let outcome = if hash.starts_with("$y$") {
        Yescrypt::default().verify_password(password.as_bytes(), hash)
    } else {
        ShaCrypt::default().verify_password(password.as_bytes(), hash)
    };
    match outcome {
        Ok(()) => Ok(true),
        Err(sha_crypt::password_hash::Error::PasswordInvalid) => Ok(false),
        Err(e) => Err(format!("the configured hash cannot be used: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made with libxcrypt's crypt(3) (Debian's mkpasswd), password "startest-admin".
    const SHA512: &str = "$6$startest$ZLyIIzS1lHM0j9etDLcmNu2CybXpT0jLXkPlik.E0Y9cFOt9lQ72lnqK6.9hdqHlYjXe.svcuXnwsFesTSElB/";
    const SHA256_ROUNDS: &str =
        "$5$rounds=1000$startest$fNFHtusbhvK8VuZxmO03Vastz0VQtqJJb7Gjz8Z/JC9";
    const YESCRYPT: &str =
        "$y$j9T$F5Jx5fExrKuPp53xLKQ..1$KikVAI85tJMNqPHm/FkOf/N8JIQfv//XAEOr.6WHOW9";

    #[test]
    fn the_right_password_matches_every_kind() {
        for hash in [SHA512, SHA256_ROUNDS, YESCRYPT] {
            assert_eq!(verify("startest-admin", hash), Ok(true), "{hash}");
        }
    }

    #[test]
    fn a_wrong_password_does_not() {
        for hash in [SHA512, SHA256_ROUNDS, YESCRYPT] {
            for wrong in ["", "startest-admin ", "Startest-admin", "startest"] {
                assert_eq!(verify(wrong, hash), Ok(false), "{wrong:?} against {hash}");
            }
        }
    }

    #[test]
    fn damaged_hashes_are_refused_with_the_reason() {
        let cut = &SHA512[..SHA512.len() - 1];
        assert!(check_hash(cut).unwrap_err().contains("86 characters"));
        assert!(check_hash("plain")
            .unwrap_err()
            .contains("not a crypt(3) hash"));
        assert!(check_hash("$2b$10$abcdefghijklmnopqrstuv")
            .unwrap_err()
            .contains("not accepted"));
        assert!(check_hash("$7$x$y")
            .unwrap_err()
            .contains("$7$ is not a supported kind"));
        assert!(
            check_hash("$5$rounds=12$salt$fNFHtusbhvK8VuZxmO03Vastz0VQtqJJb7Gjz8Z/JC9")
                .unwrap_err()
                .contains("rounds=12")
        );
        assert!(check_hash("$y$j9T$salt$short")
            .unwrap_err()
            .contains("43-character"));
        assert!(check_hash(&SHA512.replace('.', "!")).is_err());
        // And verify refuses rather than answering "no" for a hash nobody could match.
        assert!(verify("startest-admin", cut).is_err());
        for good in [SHA512, SHA256_ROUNDS, YESCRYPT] {
            assert_eq!(check_hash(good), Ok(()));
        }
    }
}
