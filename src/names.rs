//! IAM's naming rules, checked before a name from an event reaches any API.
//!
//! An event names whom to recompute, and nothing checks it on the way in: a name IAM could never
//! hold (10,000 characters, embedded newlines) used to reach `GetUser`, which answered
//! NoSuchEntity, so the run treated the user as deleted and succeeded. Such an event is now
//! refused before any call, and the error quotes what was received in a form that is safe to log:
//! cut to [`QUOTE_CHARS`] characters, control characters escaped.
//!
//! The rules are IAM's own (CreateUser / CreateGroup `UserName` and `GroupName`): letters,
//! digits and `+=,.@_-`, 1 to 64 characters for a user and 1 to 128 for a group.
//!
//! ```
//! use eks_iam_sync::names::{check, NameKind};
//!
//! assert!(check(NameKind::User, "alice.smith@example.com").is_ok());
//! let error = check(NameKind::User, "alice\nbob").unwrap_err();
//! assert!(error.contains("\\n"), "{error}");
//! ```

/// How many characters of a refused name an error quotes.
pub const QUOTE_CHARS: usize = 64;

/// What the name names: the two kinds differ only in their maximum length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    User,
    Group,
    /// IAM role names: 1-64 of the same characters (IAM API Reference, CreateRole `RoleName`).
    Role,
}

impl NameKind {
    /// IAM's maximum length, in characters.
    pub fn max_chars(self) -> usize {
        match self {
            NameKind::User | NameKind::Role => 64,
            NameKind::Group => 128,
        }
    }

    /// The rule, for error messages.
    pub fn rule(self) -> String {
        let what = match self {
            NameKind::User => "an IAM user name",
            NameKind::Group => "an IAM group name",
            NameKind::Role => "an IAM role name",
        };
        format!(
            "{what}: 1 to {} letters, digits and +=,.@_-",
            self.max_chars()
        )
    }
}

/// The characters IAM allows in user and group names besides ASCII letters and digits.
fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || "+=,.@_-".contains(c)
}

/// Checks `name` against IAM's rule for `kind`; the error describes what was received (see
/// [`quote`]) and why it is refused.
pub fn check(kind: NameKind, name: &str) -> Result<(), String> {
    let chars = name.chars().count();
    let why = if chars == 0 {
        Some("it is empty".to_owned())
    } else if chars > kind.max_chars() {
        Some(format!("it has {chars} characters"))
    } else {
        name.chars()
            .find(|c| !allowed(*c))
            .map(|c| format!("it contains {}", c.escape_debug()))
    };
    match why {
        None => Ok(()),
        Some(why) => Err(format!(
            "expected {}, received {} ({why})",
            kind.rule(),
            quote(name)
        )),
    }
}

/// `text` in double quotes, safe for one log line: control characters and quotes escaped as in
/// Rust string literals, cut after [`QUOTE_CHARS`] characters with the full length named.
pub fn quote(text: &str) -> String {
    let total = text.chars().count();
    let shown: String = text
        .chars()
        .take(QUOTE_CHARS)
        .flat_map(char::escape_debug)
        .collect();
    if total > QUOTE_CHARS {
        format!("\"{shown}\"… ({total} characters)")
    } else {
        format!("\"{shown}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ordinary_names_pass() {
        for name in ["alice", "alice.smith@example.com", "a+b=c,d_e-f", "A1"] {
            check(NameKind::User, name).unwrap();
        }
        check(NameKind::User, &"a".repeat(64)).unwrap();
        check(NameKind::Group, &"g".repeat(128)).unwrap();
    }

    #[test]
    fn a_user_name_longer_than_64_is_refused_but_a_group_name_is_not() {
        let name = "a".repeat(65);
        let error = check(NameKind::User, &name).unwrap_err();
        assert!(error.contains("65 characters"), "{error}");
        check(NameKind::Group, &name).unwrap();
        assert!(check(NameKind::Group, &"g".repeat(129)).is_err());
    }

    #[test]
    fn a_huge_name_is_quoted_cut_with_its_length() {
        let error = check(NameKind::User, &"x".repeat(10_000)).unwrap_err();
        assert!(error.len() < 300, "{} bytes: {error}", error.len());
        assert!(error.contains("10000 characters"), "{error}");
        assert!(error.contains(&"x".repeat(QUOTE_CHARS)), "{error}");
    }

    #[test]
    fn control_characters_are_escaped() {
        let error = check(NameKind::User, "alice\nbob\u{1b}[31m").unwrap_err();
        assert!(
            !error.contains('\n') && !error.contains('\u{1b}'),
            "{error}"
        );
        assert!(error.contains("alice\\nbob\\u{1b}[31m"), "{error}");
        assert!(error.contains("it contains \\n"), "{error}");
    }

    #[test]
    fn empty_names_and_spaces_are_refused() {
        assert!(check(NameKind::User, "").unwrap_err().contains("empty"));
        assert!(check(NameKind::Group, "eks developers").is_err());
        assert!(check(NameKind::User, "ålice").is_err());
    }

    proptest! {
        #[test]
        fn valid_names_pass(name in "[A-Za-z0-9+=,.@_-]{1,64}") {
            prop_assert!(check(NameKind::User, &name).is_ok());
            prop_assert!(check(NameKind::Group, &name).is_ok());
        }

        #[test]
        fn a_refusal_is_one_short_line(name in any::<String>()) {
            if let Err(error) = check(NameKind::User, &name) {
                prop_assert!(!error.chars().any(char::is_control), "{error:?}");
                // The quote holds at most QUOTE_CHARS characters, each escaped to at most 10.
                prop_assert!(error.chars().count() < 200 + QUOTE_CHARS * 10, "{error:?}");
            }
        }

        #[test]
        fn any_disallowed_character_is_refused(
            prefix in "[a-z]{0,10}",
            bad in any::<char>().prop_filter("disallowed", |c| !allowed(*c)),
        ) {
            let name = format!("{prefix}{bad}");
            prop_assert!(check(NameKind::User, &name).is_err());
        }
    }
}
