//! The role session name that names the person behind `eks-iam-sync token --role-arn`.
//!
//! `aws eks get-token --role-arn R` assumes R with botocore's fixed session name
//! (`EKSGetTokenAuth`), so every person who uses it reaches the cluster as the same session and
//! a `{{SessionName}}` username names nobody. The token helper instead takes the name from the
//! caller's own identity (GetCallerIdentity): an IAM user's name, or the caller's own session
//! name when it is already a role session (IAM Identity Center signs people in as sessions
//! named after them, e.g. `alice@example.com`).
//!
//! Which callers can go on at all follows STS: AssumeRole may be called by "an IAM user or IAM
//! role with existing temporary security credentials" (IAM User Guide, "Compare AWS STS
//! credentials", id_credentials_sts-comparison.html). The account's root user and federated
//! users (GetFederationToken sessions) cannot, so they are refused here with a reason, before
//! STS refuses them with a less helpful one.
//!
//! The result obeys STS's `RoleSessionName` constraints (STS API reference, AssumeRole: length
//! 2-64, pattern `[\w+=,.@-]*`): characters outside the set become `-`, longer names are cut at
//! 64. IAM user and session names already obey them, so for every caller AWS can produce the
//! name comes through unchanged; the sanitiser only guards against what a caller ARN could
//! carry in future. Everything here is a pure function of strings.
//!
//! ```
//! use eks_iam_sync::session_name::session_name;
//!
//! let sso = "arn:aws:sts::111122223333:assumed-role/AWSReservedSSO_Admin_0123456789abcdef/alice@example.com";
//! assert_eq!(session_name(sso, None).unwrap(), "alice@example.com");
//! let user = "arn:aws:iam::111122223333:user/engineering/bob";
//! assert_eq!(session_name(user, None).unwrap(), "bob");
//! assert_eq!(session_name(user, Some("bob-oncall")).unwrap(), "bob-oncall");
//! assert!(session_name(user, Some("bob oncall")).is_err());
//! ```

/// STS's shortest `RoleSessionName`.
pub const MIN_LEN: usize = 2;
/// STS's longest `RoleSessionName`.
pub const MAX_LEN: usize = 64;

/// Why no session name can be had. ARNs and names are identifiers, not secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionNameError {
    #[error("the caller {arn} is the account's root user, which STS does not let assume roles; sign in as an IAM user or through IAM Identity Center")]
    RootCaller { arn: String },
    #[error("the caller {arn} is a federated user (GetFederationToken), whose credentials STS does not let assume roles; use an IAM user or a role session")]
    FederatedCaller { arn: String },
    #[error("the caller {arn:?} is neither an IAM user nor a role session, so it names no person; pass --session-name")]
    UnknownCaller { arn: String },
    #[error("the name {name:?} of the caller {arn} cannot be a role session name ({reason}); pass --session-name")]
    Unusable {
        arn: String,
        name: String,
        reason: &'static str,
    },
    #[error("--session-name {name:?} is not a valid STS role session name: {reason}")]
    InvalidOverride { name: String, reason: &'static str },
}

/// The session name to assume a role with: `requested` (from `--session-name`) if given and
/// valid, else the person named by `caller_arn`, sanitised.
pub fn session_name(caller_arn: &str, requested: Option<&str>) -> Result<String, SessionNameError> {
    match requested {
        Some(name) => requested_name(name),
        None => from_caller(caller_arn),
    }
}

/// A `--session-name` as given, if STS accepts it; never altered, so the person who asked for
/// it sees exactly that name in the audit log.
pub fn requested_name(name: &str) -> Result<String, SessionNameError> {
    check(name)
        .map(|()| name.to_owned())
        .map_err(|reason| SessionNameError::InvalidOverride {
            name: name.to_owned(),
            reason,
        })
}

/// The sanitised name of the person `caller_arn` names.
pub fn from_caller(caller_arn: &str) -> Result<String, SessionNameError> {
    let raw = caller_name(caller_arn)?;
    let name = sanitize(raw);
    check(&name)
        .map(|()| name)
        .map_err(|reason| SessionNameError::Unusable {
            arn: caller_arn.to_owned(),
            name: raw.to_owned(),
            reason,
        })
}

/// The person a caller ARN names: the last path segment of `user/...` (IAM user names cannot
/// hold `/`), the session of `assumed-role/ROLE/SESSION` (session names cannot hold `/`).
pub fn caller_name(caller_arn: &str) -> Result<&str, SessionNameError> {
    let unknown = || SessionNameError::UnknownCaller {
        arn: caller_arn.to_owned(),
    };
    let parts: Vec<&str> = caller_arn.splitn(6, ':').collect();
    let [arn, _partition, service, _region, _account, resource] = parts[..] else {
        return Err(unknown());
    };
    if arn != "arn" {
        return Err(unknown());
    }
    let (kind, rest) = resource.split_once('/').unwrap_or((resource, ""));
    let last = rest.rsplit('/').next().unwrap_or_default();
    match (service, kind) {
        ("iam", "root") => Err(SessionNameError::RootCaller {
            arn: caller_arn.to_owned(),
        }),
        ("sts", "federated-user") => Err(SessionNameError::FederatedCaller {
            arn: caller_arn.to_owned(),
        }),
        ("iam", "user") if !last.is_empty() => Ok(last),
        // ROLE/SESSION: a session needs both parts.
        ("sts", "assumed-role") if rest.contains('/') && !last.is_empty() => Ok(last),
        _ => Err(unknown()),
    }
}

/// Whether STS accepts `c` in a role session name (`[\w+=,.@-]`, `\w` being ASCII letters,
/// digits and `_`).
pub fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_+=,.@-".contains(c)
}

/// `raw` with every character STS refuses replaced by `-`, cut to [`MAX_LEN`]. Valid names are
/// returned unchanged; the result may still be too short (see [`check`]).
pub fn sanitize(raw: &str) -> String {
    raw.chars()
        .map(|c| if allowed(c) { c } else { '-' })
        .take(MAX_LEN)
        .collect()
}

/// Whether STS accepts `name` as a `RoleSessionName`; the reason when not.
pub fn check(name: &str) -> Result<(), &'static str> {
    let len = name.chars().count();
    if len < MIN_LEN {
        return Err("it must be at least 2 characters long");
    }
    if len > MAX_LEN {
        return Err("it must be at most 64 characters long");
    }
    if !name.chars().all(allowed) {
        return Err("it may hold only letters, digits and _+=,.@-");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn each_caller_kind() {
        let cases = [
            ("arn:aws:iam::111122223333:user/alice", "alice"),
            ("arn:aws:iam::111122223333:user/a/b/c/alice", "alice"),
            (
                "arn:aws:sts::111122223333:assumed-role/AWSReservedSSO_Admin_abc/bob@example.com",
                "bob@example.com",
            ),
            (
                "arn:aws-cn:sts::111122223333:assumed-role/ops/carol",
                "carol",
            ),
        ];
        for (arn, want) in cases {
            assert_eq!(session_name(arn, None).unwrap(), want, "{arn}");
        }
        assert!(matches!(
            session_name("arn:aws:iam::111122223333:root", None),
            Err(SessionNameError::RootCaller { .. })
        ));
        assert!(matches!(
            session_name("arn:aws:sts::111122223333:federated-user/dave", None),
            Err(SessionNameError::FederatedCaller { .. })
        ));
        for arn in [
            "",
            "alice",
            "arn:aws:iam::111122223333:role/ops",
            "arn:aws:sts::111122223333:assumed-role/ops",
            "arn:aws:sts::111122223333:assumed-role/ops/",
            "arn:aws:iam::111122223333:user/",
            "nra:aws:iam::111122223333:user/alice",
        ] {
            assert!(
                matches!(
                    session_name(arn, None),
                    Err(SessionNameError::UnknownCaller { .. })
                ),
                "{arn}"
            );
        }
    }

    #[test]
    fn a_one_letter_user_needs_an_override() {
        let arn = "arn:aws:iam::111122223333:user/x";
        let error = session_name(arn, None).unwrap_err();
        assert!(error.to_string().contains("--session-name"), "{error}");
        assert_eq!(session_name(arn, Some("x-admin")).unwrap(), "x-admin");
    }

    #[test]
    fn an_invalid_override_is_refused_with_the_reason() {
        let arn = "arn:aws:iam::111122223333:user/alice";
        for (name, reason) in [
            ("a", "at least 2"),
            ("alice smith", "only letters"),
            ("alice/admin", "only letters"),
            (&"a".repeat(65), "at most 64"),
        ] {
            let error = session_name(arn, Some(name)).unwrap_err();
            assert!(
                matches!(error, SessionNameError::InvalidOverride { .. }),
                "{error}"
            );
            assert!(error.to_string().contains(reason), "{error}");
        }
    }

    fn valid_name() -> impl Strategy<Value = String> {
        "[A-Za-z0-9_+=,.@-]{2,64}"
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Whatever the input, the sanitised name is one STS accepts, or too short to be one.
        #[test]
        fn sanitized_names_obey_sts(raw in any::<String>()) {
            let name = sanitize(&raw);
            prop_assert!(name.chars().count() <= MAX_LEN);
            prop_assert!(name.chars().all(allowed));
            prop_assert_eq!(check(&name).is_ok(), name.chars().count() >= MIN_LEN);
            prop_assert_eq!(sanitize(&name), name.clone());
        }

        /// Names STS accepts pass through untouched: the person is named exactly.
        #[test]
        fn valid_names_are_unchanged(name in valid_name()) {
            prop_assert_eq!(sanitize(&name), name.clone());
            prop_assert!(check(&name).is_ok());
        }

        /// An IAM user, with any path, is named by its user name.
        #[test]
        fn users_are_named_by_their_name(
            account in "[0-9]{12}",
            path in proptest::collection::vec("[A-Za-z0-9_+=,.@-]{1,8}", 0..4),
            name in "[A-Za-z0-9_+=,.@-]{2,64}",
        ) {
            let mut resource = String::from("user/");
            for segment in &path {
                resource.push_str(segment);
                resource.push('/');
            }
            resource.push_str(&name);
            let arn = format!("arn:aws:iam::{account}:{resource}");
            prop_assert_eq!(session_name(&arn, None).unwrap(), name);
        }

        /// A role session is named by its own session name, whatever the role.
        #[test]
        fn sessions_keep_their_session_name(
            role in "[A-Za-z0-9_+=,.@-]{1,64}",
            session in valid_name(),
        ) {
            let arn = format!("arn:aws:sts::111122223333:assumed-role/{role}/{session}");
            prop_assert_eq!(session_name(&arn, None).unwrap(), session);
        }

        /// An override wins when valid and is refused, never altered, when not.
        #[test]
        fn overrides_are_taken_or_refused(requested in any::<String>()) {
            let arn = "arn:aws:iam::111122223333:user/alice";
            match session_name(arn, Some(&requested)) {
                Ok(name) => {
                    prop_assert_eq!(&name, &requested);
                    prop_assert!(check(&name).is_ok());
                }
                Err(SessionNameError::InvalidOverride { name, .. }) => {
                    prop_assert_eq!(name, requested.clone());
                    prop_assert!(check(&requested).is_err());
                }
                Err(other) => prop_assert!(false, "unexpected {other}"),
            }
        }

        /// Arbitrary caller ARNs give a valid name or an error, never a panic.
        #[test]
        fn any_arn_gives_a_valid_name_or_an_error(arn in any::<String>()) {
            if let Ok(name) = session_name(&arn, None) {
                prop_assert!(check(&name).is_ok());
            }
        }
    }
}
