//! Which installation of the tool this is, and so which entries are its own.
//!
//! Two installations can reach one cluster: two accounts' stacks, or a staging and a production
//! stack. With one shared ownership marker each would take the other's entries for its own and
//! delete them on every full reconcile, so access would flap hourly. Each installation therefore
//! records its id in what it writes (the aws-auth marker `managedBy: eks-iam-sync/<id>`, the
//! access-entry tag `eks-iam-sync/managed=<id>`) and changes only entries carrying its own id.
//! Another installation's entries are someone else's: kept as written, and a desired user who
//! already has one is a conflict.
//!
//! Entries written before installations existed carry the legacy marker (`managedBy:
//! eks-iam-sync`, tag value `true`). They belong to the *default* installation: one whose id
//! was not set in its config document, so upgrading a stack keeps every entry it wrote owned
//! and unchanged. Nothing is written just to change a marker; when the default installation
//! writes `mapUsers` (or `mapRoles`) for another reason, it renders its own entries again and
//! they carry its marker from then on, while access entries keep their tag. An installation
//! whose config names its id never touches legacy entries, which is what a second installation
//! on a fleet should do.
//!
//! ```
//! use eks_iam_sync::installation::Installation;
//!
//! let prod = Installation::new("123456789012/eks-iam-sync", true).unwrap();
//! assert_eq!(prod.aws_auth_marker(), "eks-iam-sync/123456789012/eks-iam-sync");
//! assert!(prod.owns_aws_auth_marker("eks-iam-sync"), "the default installation owns legacy entries");
//! let staging = Installation::new("staging", false).unwrap();
//! assert!(!staging.owns_aws_auth_marker("eks-iam-sync"));
//! assert!(!staging.owns_tag_value(&prod.tag_value()));
//! ```

use std::fmt;

/// The aws-auth marker value of entries written before installations existed, and of the
/// installation that has no id.
pub const LEGACY_MARKER: &str = "eks-iam-sync";
/// The access-entry tag value of entries written before installations existed.
pub const LEGACY_TAG_VALUE: &str = "true";
/// Environment variable naming the installation when the config document does not: the
/// template sets it to `<account id>/<stack name>`, which is stable and unique per stack.
pub const ENV_INSTALLATION: &str = "EKS_IAM_SYNC_INSTALLATION";

/// EKS tag values are at most 256 characters. 200 holds an account id, a slash and the longest
/// stack name (12 + 1 + 128).
const MAX_ID: usize = 200;

/// This installation's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installation {
    /// `None`: the installation of a run with no id anywhere (the CLI without config, the
    /// tests), which writes the legacy marker.
    id: Option<String>,
    /// Whether entries with the legacy marker are this installation's.
    owns_legacy: bool,
}

/// An installation id that EKS or aws-auth could not hold, or that would read as a legacy one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "installation {id:?} is not usable: {why}; use 1 to {MAX_ID} letters, digits and \
     `_ . : / = + - @` (for example `<account id>/<stack name>`)"
)]
pub struct InstallationError {
    pub id: String,
    pub why: &'static str,
}

impl Installation {
    /// The installation without an id: it writes and owns legacy-marked entries only.
    pub fn legacy() -> Self {
        Installation {
            id: None,
            owns_legacy: true,
        }
    }

    /// The installation `id`. `owns_legacy`: whether it is the default installation, which
    /// owns entries written before installations existed.
    pub fn new(id: &str, owns_legacy: bool) -> Result<Self, InstallationError> {
        let refuse = |why| {
            Err(InstallationError {
                id: id.to_owned(),
                why,
            })
        };
        if id.is_empty() || id.len() > MAX_ID {
            return refuse("its length is out of range");
        }
        // EKS tag values allow letters, digits, spaces and `_ . : / = + - @`; spaces are left
        // out since the id also goes into YAML and logs.
        if !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.:/=+-@".contains(c))
        {
            return refuse("it has a character EKS tags or aws-auth cannot hold");
        }
        if id == LEGACY_TAG_VALUE || id == "false" {
            return refuse("`true` and `false` are the tag values of legacy entries");
        }
        Ok(Installation {
            id: Some(id.to_owned()),
            owns_legacy,
        })
    }

    /// The id, `None` for [`Installation::legacy`].
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// Whether entries written before installations existed are this installation's.
    pub fn owns_legacy(&self) -> bool {
        self.owns_legacy
    }

    /// The `managedBy` value of the aws-auth entries this installation writes.
    pub fn aws_auth_marker(&self) -> String {
        match &self.id {
            None => LEGACY_MARKER.to_owned(),
            Some(id) => format!("{LEGACY_MARKER}/{id}"),
        }
    }

    /// The ownership tag value of the access entries this installation creates.
    pub fn tag_value(&self) -> String {
        self.id
            .clone()
            .unwrap_or_else(|| LEGACY_TAG_VALUE.to_owned())
    }

    /// Whether an aws-auth entry with this `managedBy` value is this installation's.
    pub fn owns_aws_auth_marker(&self, value: &str) -> bool {
        value == self.aws_auth_marker() || (self.owns_legacy && value == LEGACY_MARKER)
    }

    /// Whether an access entry with this ownership tag value is this installation's.
    pub fn owns_tag_value(&self, value: &str) -> bool {
        value == self.tag_value() || (self.owns_legacy && value == LEGACY_TAG_VALUE)
    }

    /// Which installation a `managedBy` value names, when it is one of this tool's markers at
    /// all: for reports that say whose entry is in the way.
    pub fn of_aws_auth_marker(value: &str) -> Option<String> {
        match value.strip_prefix(LEGACY_MARKER) {
            Some("") => Some("the default installation".to_owned()),
            Some(rest) => rest
                .strip_prefix('/')
                .map(|id| format!("installation {id}")),
            None => None,
        }
    }
}

/// The installation without an id ([`Installation::legacy`]), as every version before
/// installations was.
impl Default for Installation {
    fn default() -> Self {
        Installation::legacy()
    }
}

impl fmt::Display for Installation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.id {
            None => f.write_str("the default installation (no id)"),
            Some(id) if self.owns_legacy => write!(f, "{id} (default installation)"),
            Some(id) => f.write_str(id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ids_that_eks_tags_or_legacy_values_forbid_are_refused() {
        for id in ["", "a b", "a\nb", "é", "true", "false", &"x".repeat(201)] {
            assert!(Installation::new(id, false).is_err(), "{id:?}");
        }
        let error = Installation::new("a b", false).unwrap_err().to_string();
        assert!(
            error.contains("\"a b\"") && error.contains("character"),
            "{error}"
        );
        assert!(Installation::new("123456789012/prod-eks_iam.sync:x=y+z@w", false).is_ok());
    }

    #[test]
    fn the_installation_without_an_id_writes_what_earlier_versions_wrote() {
        let legacy = Installation::legacy();
        assert_eq!(legacy.aws_auth_marker(), LEGACY_MARKER);
        assert_eq!(legacy.tag_value(), LEGACY_TAG_VALUE);
        assert!(legacy.owns_aws_auth_marker(LEGACY_MARKER));
        assert!(!legacy.owns_aws_auth_marker("eks-iam-sync/staging"));
    }

    #[test]
    fn markers_name_their_installation() {
        assert_eq!(
            Installation::of_aws_auth_marker("eks-iam-sync/a/b").as_deref(),
            Some("installation a/b")
        );
        assert!(Installation::of_aws_auth_marker("eks-iam-sync")
            .is_some_and(|who| who.contains("default")));
        assert_eq!(Installation::of_aws_auth_marker("eks-iam-syncx"), None);
        assert_eq!(Installation::of_aws_auth_marker("someone"), None);
    }

    fn id() -> impl Strategy<Value = String> {
        "[A-Za-z0-9_.:/=+@-]{1,20}".prop_filter("legacy values", |id| id != "true" && id != "false")
    }

    proptest! {
        /// Two installations with different ids never own each other's entries, in either
        /// store, whichever of them is the default one; only a default one owns legacy entries.
        #[test]
        fn distinct_installations_never_own_each_others_entries(
            a in id(), b in id(), a_default: bool, b_default: bool,
        ) {
            prop_assume!(a != b);
            let a = Installation::new(&a, a_default).unwrap();
            let b = Installation::new(&b, b_default).unwrap();
            prop_assert!(!a.owns_aws_auth_marker(&b.aws_auth_marker()));
            prop_assert!(!b.owns_aws_auth_marker(&a.aws_auth_marker()));
            prop_assert!(!a.owns_tag_value(&b.tag_value()));
            prop_assert!(!b.owns_tag_value(&a.tag_value()));
            prop_assert!(a.owns_aws_auth_marker(&a.aws_auth_marker()));
            prop_assert!(a.owns_tag_value(&a.tag_value()));
            prop_assert_eq!(a.owns_aws_auth_marker(LEGACY_MARKER), a_default);
            prop_assert_eq!(a.owns_tag_value(LEGACY_TAG_VALUE), a_default);
        }
    }
}
