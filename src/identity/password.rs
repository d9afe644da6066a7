//! Password rules and hashing. Rules follow SECURITY.md: at least 12 characters (PCI DSS
//! 8.3.6), at least 64 accepted and never truncated, common passwords, the service's name and
//! the person's own email refused. Hashing is argon2id with the crate's defaults
//! (m = 19456 KiB, t = 2, p = 1), run on the blocking pool so it never stalls request threads.

use std::sync::OnceLock;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

pub const MIN_LENGTH: usize = 12;
/// Generous, so that passphrases and password managers fit; bounded, so that nobody can make
/// the server hash a megabyte.
pub const MAX_LENGTH: usize = 256;

/// A rule a new password broke, with the message shown next to the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordProblem {
    /// `password` or `password_confirmation`.
    pub field: &'static str,
    pub message: String,
}

/// What a new password is checked against besides itself.
pub struct PasswordContext<'a> {
    pub email: &'a str,
    pub service_name: &'a str,
}

/// Check a new password and its confirmation. Returns every problem, password first.
pub fn check_new_password(
    password: &str,
    confirmation: &str,
    context: &PasswordContext<'_>,
) -> Vec<PasswordProblem> {
    let mut problems = Vec::new();
    let length = password.chars().count();
    let lower = password.to_lowercase();
    let problem = |message: &str| PasswordProblem {
        field: "password",
        message: message.to_string(),
    };
    if password.is_empty() {
        problems.push(problem("Enter a password"));
    } else if length < MIN_LENGTH {
        problems.push(problem(&format!(
            "Password must be {MIN_LENGTH} characters or more"
        )));
    } else if length > MAX_LENGTH {
        problems.push(problem(&format!(
            "Password must be {MAX_LENGTH} characters or fewer"
        )));
    } else if is_common(&lower) {
        problems.push(problem(
            "Password is too easy to guess. Try a few unrelated words together",
        ));
    } else if mentions(&lower, context.service_name) {
        problems.push(problem("Password must not contain the name of the service"));
    } else if mentions(&lower, context.email)
        || mentions(&lower, context.email.split('@').next().unwrap_or(""))
    {
        problems.push(problem("Password must not contain your email address"));
    }
    if problems.is_empty() && password != confirmation {
        problems.push(PasswordProblem {
            field: "password_confirmation",
            message: "Passwords do not match".into(),
        });
    }
    problems
}

fn mentions(lower_password: &str, word: &str) -> bool {
    let word = word.trim().to_lowercase();
    word.chars().count() >= 4 && lower_password.contains(&word)
}

/// A few thousand guesses cover these; the length rule already removes the shorter ones.
fn is_common(lower: &str) -> bool {
    const COMMON: &[&str] = &[
        "password1234",
        "password12345",
        "password123456",
        "passwordpassword",
        "123456789012",
        "1234567890123",
        "12345678901234",
        "123456123456",
        "qwertyuiop12",
        "qwertyuiop123",
        "qwerty123456",
        "qwertyqwerty",
        "1q2w3e4r5t6y",
        "1qaz2wsx3edc",
        "iloveyou1234",
        "administrator",
        "letmein12345",
        "welcome12345",
        "changeme1234",
        "abcdefghijkl",
        "abc123abc123",
        "trustno1trustno1",
        "correcthorsebatterystaple",
        "football1234",
        "sunshine1234",
        "princess1234",
        "monkey123456",
        "baseball1234",
        "superman1234",
        "zaq12wsxcde3",
        "passw0rd1234",
        "p@ssw0rd1234",
        "p@ssword1234",
        "secret123456",
        "master123456",
    ];
    if COMMON.contains(&lower) {
        return true;
    }
    let chars: Vec<char> = lower.chars().collect();
    // One character over and over, or a straight run such as "abcdefghijklm" / "987654321098".
    let all_same = chars.windows(2).all(|w| w[0] == w[1]);
    let ascending = chars
        .windows(2)
        .all(|w| (w[1] as u32) == (w[0] as u32) + 1 || (w[0] == '9' && w[1] == '0'));
    let descending = chars
        .windows(2)
        .all(|w| (w[0] as u32) == (w[1] as u32) + 1 || (w[0] == '0' && w[1] == '9'));
    // A short word repeated to reach the length ("abcabcabcabc").
    let repeated =
        (1..=4).any(|n| chars.len().is_multiple_of(n) && chars.chunks(n).all(|c| c == &chars[..n]));
    all_same || ascending || descending || repeated
}

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("the hashing task did not finish")]
    Join,
}

/// Hash a password with argon2id and a fresh salt (PHC string format).
pub async fn hash(password: String) -> Result<String, HashError> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| HashError::Hash(e.to_string()))
    })
    .await
    .map_err(|_| HashError::Join)?
}

/// Whether `password` matches `stored`. With `stored` None (an unknown person, or one with
/// no password) a dummy hash is checked instead, so the answer takes the same time.
pub async fn verify(password: String, stored: Option<String>) -> bool {
    let known = stored.is_some();
    let stored = stored.unwrap_or_else(|| dummy_hash().to_string());
    let matched = tokio::task::spawn_blocking(move || {
        PasswordHash::new(&stored)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false);
    known && matched
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(b"no such person: this only costs the same time", &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(password: &str) -> Vec<PasswordProblem> {
        check_new_password(
            password,
            password,
            &PasswordContext {
                email: "sam.jones@council.example",
                service_name: "Parking Permits",
            },
        )
    }

    fn message(password: &str) -> String {
        check(password)
            .first()
            .map(|p| p.message.clone())
            .unwrap_or_default()
    }

    #[test]
    fn length_rules() {
        assert_eq!(message(""), "Enter a password");
        assert_eq!(message("short"), "Password must be 12 characters or more");
        assert!(check("eleven chrs").len() == 1);
        assert!(check("twelve chars").is_empty());
        let long: String = "horse battery ".repeat(5);
        assert!(
            long.len() >= 64 && check(&long).is_empty(),
            "64+ characters are accepted"
        );
        assert_eq!(
            message(&"x1".repeat(200)),
            "Password must be 256 characters or fewer"
        );
        assert!(
            check("ünïcödé pässwörd").is_empty(),
            "length counts characters, not bytes"
        );
    }

    #[test]
    fn guessable_passwords_are_refused() {
        for p in [
            "Password1234",
            "123456789012",
            "aaaaaaaaaaaa",
            "abcdefghijklm",
            "987654321098",
            "abcabcabcabc",
            "QWERTYUIOP12",
        ] {
            assert!(
                message(p).starts_with("Password is too easy to guess"),
                "{p}"
            );
        }
        assert_eq!(
            message("my parking permits pass"),
            "Password must not contain the name of the service"
        );
        assert_eq!(
            message("sam.jones-is-great"),
            "Password must not contain your email address"
        );
    }

    #[test]
    fn the_confirmation_must_match() {
        let problems = check_new_password(
            "a good long passphrase",
            "a good long passphrasf",
            &PasswordContext {
                email: "a@b.example",
                service_name: "X",
            },
        );
        assert_eq!(
            problems,
            vec![PasswordProblem {
                field: "password_confirmation",
                message: "Passwords do not match".into()
            }]
        );
    }

    #[tokio::test]
    async fn hashes_verify_and_unknown_people_never_match() {
        let stored = hash("a good long passphrase".into()).await.unwrap();
        assert!(
            stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{stored}"
        );
        assert!(verify("a good long passphrase".into(), Some(stored.clone())).await);
        assert!(!verify("a good long passphrasE".into(), Some(stored)).await);
        assert!(
            !verify("no such person: this only costs the same time".into(), None).await,
            "the dummy hash never signs anyone in"
        );
        assert!(!verify("x".into(), Some("not a hash".into())).await);
    }
}
