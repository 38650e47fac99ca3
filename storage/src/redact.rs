//! Keeping credentials out of every message, report and log line.
//!
//! Two layers: structural redaction of what a credential looks like inside a
//! URL (`user:password@`, token query parameters such as EOS's `authz=`),
//! which works whatever the secret's length; and redaction of the known
//! secret values of a source, wherever they appear.

use std::sync::LazyLock;

use regex::Regex;

/// What replaces a secret.
pub const REDACTED: &str = "<redacted>";

/// `scheme://user:password@` — the password part.
static USERINFO: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@?#]*):[^@\s/?#]*@").expect("valid regex")
});

/// Query parameters that carry credentials.
static TOKEN_PARAMS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)([?&;](?:authz|access_token|token|api_key|apikey|key|macaroon|sig|signature|x-amz-signature|x-amz-credential|x-amz-security-token)=)[^&\s#]*",
    )
    .expect("valid regex")
});

/// Redact passwords and token parameters of every URL in `text`.
pub fn urls(text: &str) -> String {
    let t = USERINFO.replace_all(text, format!("$1:{REDACTED}@").as_str());
    TOKEN_PARAMS
        .replace_all(&t, format!("${{1}}{REDACTED}").as_str())
        .into_owned()
}

/// Redact URLs (see [`urls`]) and every occurrence of the given secret
/// values. Values of fewer than 8 characters are replaced only where they
/// stand alone (not inside a longer word), so that a short password does not
/// mangle every message while still never showing as itself.
pub fn text(text: &str, secrets: &[String]) -> String {
    let mut t = urls(text);
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        if s.chars().count() >= 8 {
            t = t.replace(s.as_str(), REDACTED);
        } else {
            t = replace_standalone(&t, s);
        }
    }
    t
}

fn replace_standalone(text: &str, secret: &str) -> String {
    let is_word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut before: Option<char> = None;
    while let Some(i) = rest.find(secret) {
        let prev = rest[..i].chars().next_back().or(before);
        let next = rest[i + secret.len()..].chars().next();
        out.push_str(&rest[..i]);
        if is_word(prev) || is_word(next) {
            out.push_str(secret);
        } else {
            out.push_str(REDACTED);
        }
        before = secret.chars().next_back();
        rest = &rest[i + secret.len()..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_and_tokens_in_urls_are_redacted_whatever_their_length() {
        assert_eq!(
            urls("GET https://u:p@door:2880/data?authz=x&y=1 failed"),
            "GET https://u:<redacted>@door:2880/data?authz=<redacted>&y=1 failed"
        );
        assert_eq!(
            urls("relative URL without a base: htp:/crawler:s3cr3t!@127.0.0.1:80/data"),
            "relative URL without a base: htp:/crawler:s3cr3t!@127.0.0.1:80/data",
            "not a URL: left to the value redaction"
        );
        assert_eq!(
            urls("s3://bucket/key?X-Amz-Signature=abc"),
            "s3://bucket/key?X-Amz-Signature=<redacted>"
        );
        assert_eq!(
            urls("http://user@host/x"),
            "http://user@host/x",
            "no password, nothing to hide"
        );
    }

    #[test]
    fn short_secrets_are_redacted_where_they_stand_alone() {
        let secrets = vec!["pw".to_owned(), "long-enough-secret".to_owned()];
        assert_eq!(
            text("password pw rejected; long-enough-secret!", &secrets),
            "password <redacted> rejected; <redacted>!"
        );
        assert_eq!(text("user:pw@", &secrets), "user:<redacted>@");
    }
}
