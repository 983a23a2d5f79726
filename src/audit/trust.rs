//! Whether a role's session name names the person who assumed it: the audit's reading of a
//! trust policy, pure.
//!
//! A `{{SessionName}}` username shows whatever session name the caller gave AssumeRole (or
//! AssumeRoleWithWebIdentity): anyone who may assume the role can call themselves `alice`. The
//! name is the person's only when it cannot be chosen freely:
//! - the trust policy pins it: every statement that lets someone assume the role requires
//!   `sts:RoleSessionName` to equal `${aws:username}` (the caller's own IAM user name), or
//!   requires `sts:SourceIdentity` (a source identity, once set, stays with every session
//!   chained from it and CloudTrail records it with each action). IAM User Guide, "IAM and AWS
//!   STS condition context keys" (`sts:RoleSessionName`, `sts:SourceIdentity`) and "Monitor and
//!   control actions taken with assumed roles";
//! - or the role is an IAM Identity Center role (path `/aws-reserved/sso.amazonaws.com/`, name
//!   `AWSReservedSSO_*`, trusting only Identity Center's SAML provider): Identity Center sets the
//!   session name to the signed-in user's name (AWS Security Blog, "Easily control the naming of
//!   individual IAM role sessions": with AssumeRoleWithSAML the identity provider sets it).
//!
//! Anything else, including a policy that cannot be read, is self-declared: classed
//! conservatively, with the reason and the fix, never failing the audit. A pin expressed as a
//! `Deny` statement is not recognised (conservative as well).
//!
//! ```
//! use eks_iam_sync::audit::trust::{session_naming, SessionNaming};
//!
//! let free = r#"{"Statement": {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"}, "Action": "sts:AssumeRole"}}"#;
//! assert!(matches!(session_naming("admin", "/", free), SessionNaming::Free(_)));
//! let pinned = r#"{"Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
//!   "Action": "sts:AssumeRole", "Condition": {"StringEquals": {"sts:RoleSessionName": "${aws:username}"}}}]}"#;
//! assert!(matches!(session_naming("admin", "/", pinned), SessionNaming::Pinned(_)));
//! ```

use serde_json::Value;

use crate::roles::{is_sso_role_path, SSO_ROLE_NAME_PREFIX};

/// What a role's trust policy says about its session names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionNaming {
    /// The session name is the person's (set by Identity Center, or pinned by the policy); why.
    Pinned(String),
    /// Whoever assumes the role chooses it, or the policy could not be read; why, and the fix.
    Free(String),
}

/// The fix a self-declared path's reason ends with.
pub const FIX: &str = "pin it in the role's trust policy (Condition StringEquals \
     sts:RoleSessionName: ${aws:username}, or require sts:SourceIdentity in every statement \
     that allows sts:AssumeRole) or map an IAM Identity Center role instead";

/// The actions that create a session of the role under a name the request carries.
const ASSUME_ACTIONS: [&str; 3] = [
    "sts:AssumeRole",
    "sts:AssumeRoleWithWebIdentity",
    "sts:AssumeRoleWithSAML",
];
/// Operators that require the key to be present and to match one of the values.
const MATCHING_OPERATORS: [&str; 3] = ["StringEquals", "StringLike", "StringEqualsIgnoreCase"];
const USERNAME_VARIABLE: &str = "${aws:username}";

/// The session naming of role `name` at IAM path `path` with trust policy `document` (JSON, as
/// decoded from GetRole's URL encoding).
pub fn session_naming(name: &str, path: &str, document: &str) -> SessionNaming {
    let statements = match statements(document) {
        Ok(statements) => statements,
        Err(why) => {
            return SessionNaming::Free(format!(
                "the trust policy of role {name} could not be read ({why}), so whoever assumes \
                 it may have chosen the session name; {FIX}"
            ))
        }
    };
    let assuming: Vec<&Statement> = statements.iter().filter(|s| s.lets_assume()).collect();
    if assuming.is_empty() {
        return SessionNaming::Pinned(format!(
            "no statement of role {name}'s trust policy lets anyone assume it"
        ));
    }
    if is_sso_role_path(path)
        && name.starts_with(SSO_ROLE_NAME_PREFIX)
        && assuming.iter().all(|s| s.only_identity_center())
    {
        return SessionNaming::Pinned(format!(
            "role {name} is an IAM Identity Center role: Identity Center sets the session name \
             to the signed-in user's"
        ));
    }
    match assuming.iter().find(|s| s.pin().is_none()) {
        Some(free) => SessionNaming::Free(format!(
            "whoever assumes role {name} chooses the session name: its trust policy's statement \
             {} neither pins sts:RoleSessionName to ${{aws:username}} nor requires \
             sts:SourceIdentity; {FIX}",
            free.label
        )),
        None => {
            let pins: Vec<&str> = assuming.iter().filter_map(|s| s.pin()).collect();
            let pin = if pins.iter().all(|p| *p == pins[0]) {
                pins[0]
            } else {
                "pins the session name or requires a source identity"
            };
            SessionNaming::Pinned(format!(
                "role {name}'s trust policy {pin} in every statement that lets someone assume it"
            ))
        }
    }
}

/// One statement, as far as the audit needs it.
#[derive(Debug)]
struct Statement {
    /// `Sid "x"`, or `#2` (1-based) when it has none.
    label: String,
    allow: bool,
    /// `Action` patterns, or `NotAction` ones (then `not_action`).
    actions: Vec<String>,
    not_action: bool,
    /// `Principal` as written (`None` when absent or `NotPrincipal`).
    principal: Option<Value>,
    /// operator -> key -> values, keys lower-cased.
    conditions: Vec<(String, String, Vec<String>)>,
}

impl Statement {
    /// An `Allow` that covers one of [`ASSUME_ACTIONS`].
    fn lets_assume(&self) -> bool {
        self.allow
            && ASSUME_ACTIONS.iter().any(|action| {
                let listed = self.actions.iter().any(|p| glob_matches(p, action));
                listed != self.not_action
            })
    }

    /// What pins the session name here, if anything.
    fn pin(&self) -> Option<&'static str> {
        let matching = |op: &str| {
            MATCHING_OPERATORS
                .iter()
                .any(|m| m.eq_ignore_ascii_case(op))
        };
        for (op, key, values) in &self.conditions {
            if key == "sts:rolesessionname"
                && matching(op)
                && !values.is_empty()
                && values
                    .iter()
                    .all(|v| v.eq_ignore_ascii_case(USERNAME_VARIABLE))
            {
                return Some("pins sts:RoleSessionName to ${aws:username}");
            }
            if key == "sts:sourceidentity"
                && ((op.eq_ignore_ascii_case("Null") && values.iter().all(|v| v == "false"))
                    || (matching(op) && !values.is_empty()))
            {
                return Some("requires sts:SourceIdentity");
            }
        }
        None
    }

    /// The principal is only SAML providers named as Identity Center names its own
    /// (`saml-provider/AWSSSO_..._DO_NOT_DELETE`).
    fn only_identity_center(&self) -> bool {
        let Some(Value::Object(principal)) = &self.principal else {
            return false;
        };
        let arns = match principal.get("Federated").and_then(strings) {
            Some(arns) if principal.len() == 1 && !arns.is_empty() => arns,
            _ => return false,
        };
        arns.iter().all(|arn| {
            arn.split_once(":saml-provider/")
                .is_some_and(|(_, name)| name.starts_with("AWSSSO_"))
        })
    }
}

/// The statements of a policy document, `Statement` an object or an array of them.
fn statements(document: &str) -> Result<Vec<Statement>, String> {
    let policy: Value = serde_json::from_str(document).map_err(|e| format!("not JSON: {e}"))?;
    let statement = policy
        .as_object()
        .ok_or("the document is not a JSON object")?
        .get("Statement")
        .ok_or("it has no Statement")?;
    let list: Vec<&Value> = match statement {
        Value::Array(items) => items.iter().collect(),
        Value::Object(_) => vec![statement],
        _ => return Err("Statement is neither an object nor an array".into()),
    };
    list.into_iter()
        .enumerate()
        .map(|(i, s)| statement_of(i, s))
        .collect()
}

fn statement_of(index: usize, value: &Value) -> Result<Statement, String> {
    let label = match value.get("Sid").and_then(Value::as_str) {
        Some(sid) if !sid.is_empty() => format!("Sid {sid:?}"),
        _ => format!("#{}", index + 1),
    };
    let object = value
        .as_object()
        .ok_or_else(|| format!("statement {label} is not an object"))?;
    let allow = match object.get("Effect").and_then(Value::as_str) {
        Some(e) if e.eq_ignore_ascii_case("Allow") => true,
        Some(e) if e.eq_ignore_ascii_case("Deny") => false,
        _ => return Err(format!("statement {label} has no Effect Allow or Deny")),
    };
    let (actions, not_action) = match (object.get("Action"), object.get("NotAction")) {
        (Some(a), None) => (a, false),
        (None, Some(a)) => (a, true),
        _ => {
            return Err(format!(
                "statement {label} needs exactly one of Action and NotAction"
            ))
        }
    };
    let actions = strings(actions)
        .ok_or_else(|| format!("statement {label}: Action is not a string or strings"))?;
    let mut conditions = Vec::new();
    if let Some(condition) = object.get("Condition") {
        let operators = condition
            .as_object()
            .ok_or_else(|| format!("statement {label}: Condition is not an object"))?;
        for (operator, keys) in operators {
            let keys = keys.as_object().ok_or_else(|| {
                format!("statement {label}: Condition {operator} is not an object")
            })?;
            for (key, values) in keys {
                let values = scalars(values).ok_or_else(|| {
                    format!("statement {label}: Condition {operator} {key} has a value that is not a string, number or boolean")
                })?;
                conditions.push((operator.clone(), key.to_ascii_lowercase(), values));
            }
        }
    }
    Ok(Statement {
        label,
        allow,
        actions,
        not_action,
        principal: object.get("Principal").cloned(),
        conditions,
    })
}

/// A string or an array of strings.
fn strings(value: &Value) -> Option<Vec<String>> {
    match value {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_owned))
            .collect(),
        _ => None,
    }
}

/// A condition value: a scalar or an array of them, each as its text (`true` -> "true").
fn scalars(value: &Value) -> Option<Vec<String>> {
    let one = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    match value {
        Value::Array(items) => items.iter().map(one).collect(),
        other => one(other).map(|v| vec![v]),
    }
}

/// IAM's action matching: case-insensitive, `*` any run of characters, `?` one character.
fn glob_matches(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.to_ascii_lowercase().chars().collect();
    let text: Vec<char> = text.to_ascii_lowercase().chars().collect();
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const ROOT: &str = "arn:aws:iam::123456789012:root";

    fn allow(condition: Value) -> Value {
        let mut s =
            json!({"Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "sts:AssumeRole"});
        if !condition.is_null() {
            s["Condition"] = condition;
        }
        s
    }

    fn naming(statements: Value) -> SessionNaming {
        let doc = json!({"Version": "2012-10-17", "Statement": statements}).to_string();
        session_naming("admin", "/", &doc)
    }

    fn pinned(n: &SessionNaming) -> bool {
        matches!(n, SessionNaming::Pinned(_))
    }

    #[test]
    fn each_pin_is_recognised_in_each_of_its_forms() {
        let pins = [
            json!({"StringEquals": {"sts:RoleSessionName": "${aws:username}"}}),
            json!({"StringLike": {"sts:RoleSessionName": ["${aws:username}"]}}),
            json!({"StringEquals": {"STS:rolesessionname": "${aws:userName}"}}),
            json!({"Null": {"sts:SourceIdentity": "false"}}),
            json!({"Null": {"sts:SourceIdentity": false}}),
            json!({"StringLike": {"sts:SourceIdentity": "*"}}),
            json!({"StringEquals": {"sts:SourceIdentity": ["${aws:username}"]}, "Bool": {"aws:MultiFactorAuthPresent": true}}),
        ];
        for condition in pins {
            assert!(
                pinned(&naming(json!([allow(condition.clone())]))),
                "{condition}"
            );
            assert!(
                pinned(&naming(allow(condition.clone()))),
                "object: {condition}"
            );
        }
    }

    #[test]
    fn what_does_not_pin_leaves_the_name_free_with_the_fix() {
        let free = [
            Value::Null,
            json!({"StringEquals": {"sts:RoleSessionName": ["${aws:username}", "admin"]}}),
            json!({"StringLike": {"sts:RoleSessionName": "*"}}),
            json!({"StringEqualsIfExists": {"sts:SourceIdentity": "${aws:username}"}}),
            json!({"Null": {"sts:SourceIdentity": "true"}}),
            json!({"ForAllValues:StringEquals": {"sts:RoleSessionName": "${aws:username}"}}),
            json!({"StringNotEquals": {"sts:RoleSessionName": "${aws:username}"}}),
            json!({"StringEquals": {"sts:ExternalId": "${aws:username}"}}),
        ];
        for condition in free {
            let got = naming(json!([allow(condition.clone())]));
            let SessionNaming::Free(why) = got else {
                panic!("{condition} pinned: {got:?}")
            };
            assert!(
                why.contains("chooses the session name") && why.ends_with(FIX),
                "{why}"
            );
        }
    }

    #[test]
    fn one_free_statement_among_pinned_ones_frees_the_name() {
        let pin = json!({"StringEquals": {"sts:RoleSessionName": "${aws:username}"}});
        let mut web = allow(Value::Null);
        web["Action"] = json!(["sts:AssumeRoleWithWebIdentity"]);
        web["Sid"] = json!("Ci");
        let got = naming(json!([allow(pin.clone()), web]));
        let SessionNaming::Free(why) = got else {
            panic!("{got:?}")
        };
        assert!(why.contains("statement Sid \"Ci\""), "{why}");
        // Statements that do not let anyone assume the role do not count.
        let tag = json!({"Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": ["sts:TagSession", "sts:SetSourceIdentity"]});
        let deny = json!({"Effect": "Deny", "Principal": "*", "Action": "sts:AssumeRole"});
        assert!(pinned(&naming(json!([allow(pin), tag, deny]))));
    }

    #[test]
    fn actions_match_as_iam_matches_them() {
        for action in [
            "sts:*",
            "*",
            "STS:assumerole",
            "sts:AssumeRole*",
            "sts:Assume?ole",
        ] {
            let mut s = allow(Value::Null);
            s["Action"] = json!(action);
            assert!(!pinned(&naming(json!([s]))), "{action}");
        }
        let mut not = allow(Value::Null);
        not.as_object_mut().unwrap().remove("Action");
        not["NotAction"] = json!("iam:*");
        assert!(
            !pinned(&naming(json!([not.clone()]))),
            "NotAction iam:* allows AssumeRole"
        );
        not["NotAction"] = json!("sts:*");
        assert!(
            pinned(&naming(json!([not]))),
            "NotAction sts:* allows no assumption"
        );
    }

    #[test]
    fn identity_center_roles_are_named_by_identity_center() {
        let sso = json!([{
            "Effect": "Allow",
            "Principal": {"Federated": "arn:aws:iam::123456789012:saml-provider/AWSSSO_0123abcd_DO_NOT_DELETE"},
            "Action": ["sts:AssumeRoleWithSAML", "sts:TagSession"],
            "Condition": {"StringEquals": {"SAML:aud": "https://signin.aws.amazon.com/saml"}}
        }]);
        let doc = json!({"Statement": sso}).to_string();
        let name = "AWSReservedSSO_Admin_0123abcd";
        for path in [
            "/aws-reserved/sso.amazonaws.com/",
            "/aws-reserved/sso.amazonaws.com/eu-west-1/",
        ] {
            assert!(pinned(&session_naming(name, path, &doc)), "{path}");
        }
        // The same trust on another path or name is an ordinary SAML role.
        assert!(!pinned(&session_naming(name, "/", &doc)));
        assert!(!pinned(&session_naming(
            "Admin",
            "/aws-reserved/sso.amazonaws.com/",
            &doc
        )));
        // An Identity Center role that someone also opened to an account is not.
        let mut opened = sso.clone();
        opened.as_array_mut().unwrap().push(allow(Value::Null));
        let doc = json!({"Statement": opened}).to_string();
        assert!(!pinned(&session_naming(
            name,
            "/aws-reserved/sso.amazonaws.com/",
            &doc
        )));
    }

    #[test]
    fn a_policy_that_cannot_be_read_is_free_with_the_reason() {
        for (doc, reason) in [
            ("not json", "not JSON"),
            ("[]", "not a JSON object"),
            ("{}", "no Statement"),
            (r#"{"Statement": 3}"#, "neither an object nor an array"),
            (r#"{"Statement": [3]}"#, "is not an object"),
            (
                r#"{"Statement": [{"Action": "sts:AssumeRole"}]}"#,
                "no Effect",
            ),
            (
                r#"{"Statement": [{"Effect": "Allow"}]}"#,
                "Action and NotAction",
            ),
            (
                r#"{"Statement": [{"Effect": "Allow", "Action": 1}]}"#,
                "not a string",
            ),
            (
                r#"{"Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Condition": []}]}"#,
                "Condition is not an object",
            ),
            (
                r#"{"Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Condition": {"StringEquals": {"k": {}}}}]}"#,
                "not a string, number or boolean",
            ),
        ] {
            let SessionNaming::Free(why) = session_naming("admin", "/", doc) else {
                panic!("{doc} pinned")
            };
            assert!(
                why.contains("could not be read") && why.contains(reason),
                "{doc}: {why}"
            );
        }
    }

    fn any_condition() -> impl Strategy<Value = Value> {
        let key = prop_oneof![
            Just("sts:RoleSessionName"),
            Just("sts:SourceIdentity"),
            Just("sts:ExternalId"),
            Just("aws:PrincipalTag/team")
        ];
        let op = prop_oneof![
            Just("StringEquals"),
            Just("StringLike"),
            Just("StringNotEquals"),
            Just("Null"),
            Just("ForAnyValue:StringEquals")
        ];
        let value = prop_oneof![
            Just("${aws:username}"),
            Just("alice"),
            Just("*"),
            Just("false"),
            Just("true")
        ];
        proptest::collection::vec((op, key, proptest::collection::vec(value, 1..3)), 0..3).prop_map(
            |entries| {
                let mut condition = serde_json::Map::new();
                for (op, key, values) in entries {
                    let keys = condition.entry(op.to_owned()).or_insert_with(|| json!({}));
                    keys[key] = json!(values);
                }
                Value::Object(condition)
            },
        )
    }

    fn any_statement() -> impl Strategy<Value = Value> {
        (
            prop_oneof![Just("Allow"), Just("Deny")],
            prop_oneof![
                Just(json!("sts:AssumeRole")),
                Just(json!(["sts:TagSession", "sts:AssumeRole"])),
                Just(json!("sts:TagSession")),
                Just(json!("sts:*"))
            ],
            any_condition(),
        )
            .prop_map(|(effect, action, condition)| {
                json!({"Effect": effect, "Principal": {"AWS": ROOT}, "Action": action, "Condition": condition})
            })
    }

    /// The same policy in its other spellings: one-element arrays as scalars, condition
    /// values as arrays, keys in another case.
    fn respelled(statement: &Value) -> Value {
        let mut s = statement.clone();
        if let Some(Value::Array(a)) = s.get("Action") {
            if a.len() == 1 {
                s["Action"] = a[0].clone();
            }
        }
        if let Some(Value::Object(ops)) = s.get_mut("Condition") {
            for keys in ops.values_mut() {
                let Value::Object(map) = keys else { continue };
                let respelled: serde_json::Map<String, Value> = map
                    .iter()
                    .map(|(k, v)| {
                        let v = match v {
                            Value::Array(a) if a.len() == 1 => a[0].clone(),
                            Value::String(_) => json!([v]),
                            other => other.clone(),
                        };
                        (k.to_ascii_uppercase(), v)
                    })
                    .collect();
                *map = respelled;
            }
        }
        s
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        /// Pinned exactly when every Allow statement that lets someone assume the role carries
        /// a pin; the spelling of the policy does not matter.
        #[test]
        fn pinned_means_every_assuming_statement_pins(statements in proptest::collection::vec(any_statement(), 1..4)) {
            let got = naming(json!(statements));
            let parsed = self::statements(&json!({"Statement": statements}).to_string()).unwrap();
            let assuming: Vec<_> = parsed.iter().filter(|s| s.lets_assume()).collect();
            prop_assert_eq!(pinned(&got), assuming.iter().all(|s| s.pin().is_some()));
            let respelled: Vec<Value> = statements.iter().map(respelled).collect();
            prop_assert_eq!(pinned(&naming(json!(respelled))), pinned(&got));
            if statements.len() == 1 {
                prop_assert_eq!(pinned(&naming(statements[0].clone())), pinned(&got));
            }
        }

        /// Adding a statement that lets anyone assume the role without a pin always frees the
        /// name: no policy can be made to look pinned by what else it says.
        #[test]
        fn an_unpinned_assume_statement_always_frees_the_name(statements in proptest::collection::vec(any_statement(), 0..4), at in 0usize..4) {
            let mut statements = statements;
            statements.insert(at.min(statements.len()), allow(Value::Null));
            prop_assert!(!pinned(&naming(json!(statements))));
        }

        /// Any JSON at all is read without panicking, and what cannot be read is free.
        #[test]
        fn any_document_is_classed_without_panicking(doc in "\\PC{0,80}") {
            let _ = session_naming("admin", "/", &doc);
        }
    }

    #[test]
    fn globs() {
        assert!(glob_matches("sts:Assume*", "sts:AssumeRole"));
        assert!(glob_matches("*Role", "sts:AssumeRole"));
        assert!(!glob_matches("sts:Assume", "sts:AssumeRole"));
        assert!(glob_matches("s?s:*o*e", "sts:AssumeRole"));
    }
}
