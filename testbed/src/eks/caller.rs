//! Who a request comes from: the access key id and region of the SigV4 credential scope
//! (`Authorization: AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/eks/aws4_request, ...`),
//! and the account that access key belongs to. Signatures are not verified.

use axum::http::header::AUTHORIZATION;
use axum::http::HeaderMap;

use super::error::ApiError;
use super::Scope;

const SIGV4_ALGORITHM: &str = "AWS4-HMAC-SHA256";
const SIGNING_SERVICE: &str = "eks";

/// The resolved caller of one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Caller {
    pub(super) account: String,
    pub(super) region: String,
}

/// The access key id and region of the SigV4 `Authorization` header of `headers`.
pub(super) fn credential_scope_of(headers: &HeaderMap) -> Result<(String, String), ApiError> {
    let authorization = headers
        .get(AUTHORIZATION)
        .ok_or(ApiError::MissingAuthenticationToken)?
        .to_str()
        .map_err(|_| incomplete("not ASCII"))?;
    let (access_key_id, region) = credential_scope(authorization)?;
    Ok((access_key_id.to_owned(), region.to_owned()))
}

impl Caller {
    /// The (account, region) the request addresses.
    pub(super) fn scope(&self) -> Scope {
        Scope {
            account: self.account.clone(),
            region: self.region.clone(),
        }
    }
}

/// The access key id and region of a SigV4 `Authorization` header value.
fn credential_scope(authorization: &str) -> Result<(&str, &str), ApiError> {
    let parameters = authorization
        .strip_prefix(SIGV4_ALGORITHM)
        .ok_or_else(|| incomplete("unsupported algorithm"))?;
    let credential = parameters
        .split(',')
        .find_map(|parameter| parameter.trim().strip_prefix("Credential="))
        .ok_or_else(|| incomplete("no Credential"))?;
    let parts: Vec<&str> = credential.split('/').collect();
    let [access_key_id, _date, region, service, "aws4_request"] = parts.as_slice() else {
        return Err(incomplete("malformed credential scope"));
    };
    if access_key_id.is_empty() || region.is_empty() {
        return Err(incomplete("empty access key id or region"));
    }
    if *service != SIGNING_SERVICE {
        return Err(ApiError::WrongSigningService);
    }
    Ok((access_key_id, region))
}

fn incomplete(why: &str) -> ApiError {
    ApiError::IncompleteSignature(why.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240101/eu-west-1/eks/aws4_request, SignedHeaders=host;x-amz-date, Signature=00";

    #[test]
    fn credential_scope_yields_access_key_and_region() {
        assert_eq!(
            credential_scope(HEADER).unwrap(),
            ("AKIDEXAMPLE", "eu-west-1")
        );
    }

    #[test]
    fn credential_scope_rejects_other_services() {
        let header = HEADER.replace("/eks/", "/iam/");
        assert!(matches!(
            credential_scope(&header),
            Err(ApiError::WrongSigningService)
        ));
    }

    #[test]
    fn credential_scope_rejects_malformed_headers() {
        for header in [
            "Basic abc",
            "AWS4-HMAC-SHA256 SignedHeaders=host",
            "AWS4-HMAC-SHA256 Credential=AKID/20240101/eks/aws4_request",
        ] {
            assert!(
                matches!(
                    credential_scope(header),
                    Err(ApiError::IncompleteSignature(_))
                ),
                "{header}"
            );
        }
    }
}
