//! Identity keys: normalised phones and e-mails and their SHA-256 hashes.
//!
//! These are the keys identity resolution merges on and the keys consented
//! social data links through (DESIGN.md):
//!
//! * phone: digits only; an international `00` prefix is dropped; country
//!   code `86` is added when missing;
//! * e-mail: trimmed and lower-cased.
//!
//! ```
//! use cdp_core::identity::{normalize_phone, phone_sha256};
//! assert_eq!(normalize_phone("+86 138-1234 5678").as_deref(), Some("8613812345678"));
//! assert_eq!(phone_sha256("138 1234 5678"), phone_sha256("0086 13812345678"));
//! ```

use sha2::{Digest, Sha256};

/// Fewer digits than this is not a phone number.
const MIN_PHONE_DIGITS: usize = 7;

/// The normalised phone: digits only, `00` prefix dropped, `86` added when missing.
pub fn normalize_phone(raw: &str) -> Option<String> {
    let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
    let digits = digits.strip_prefix("00").unwrap_or(&digits);
    if digits.len() < MIN_PHONE_DIGITS {
        return None;
    }
    Some(if digits.starts_with("86") {
        digits.to_string()
    } else {
        format!("86{digits}")
    })
}

/// The normalised e-mail: trimmed and lower-cased; `None` when it has no `@`.
pub fn normalize_email(raw: &str) -> Option<String> {
    let email = raw.trim().to_lowercase();
    (email.len() >= 3 && email.contains('@')).then_some(email)
}

/// Lower-case hex SHA-256 of `text`.
pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// SHA-256 hex of the normalised phone.
pub fn phone_sha256(raw: &str) -> Option<String> {
    normalize_phone(raw).map(|p| sha256_hex(&p))
}

/// SHA-256 hex of the normalised e-mail.
pub fn email_sha256(raw: &str) -> Option<String> {
    normalize_email(raw).map(|e| sha256_hex(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_formats_normalise_to_one_key() {
        let formats = [
            "13812345678",
            "138-1234-5678",
            "138 1234 5678",
            "+86 138 1234 5678",
            "+8613812345678",
            "0086 138 1234 5678",
            "(+86) 138-1234-5678",
            "8613812345678",
        ];
        for f in formats {
            assert_eq!(normalize_phone(f).as_deref(), Some("8613812345678"), "{f}");
        }
        assert_eq!(normalize_phone("12-34"), None);
        assert_eq!(normalize_phone(""), None);
    }

    #[test]
    fn email_is_trimmed_and_lowercased() {
        assert_eq!(
            normalize_email("  Wang.Wei@QQ.com ").as_deref(),
            Some("wang.wei@qq.com")
        );
        assert_eq!(normalize_email("nobody"), None);
        assert_eq!(email_sha256(" A@B.CN"), email_sha256("a@b.cn"));
    }

    #[test]
    fn sha256_is_lower_hex_of_the_normalised_text() {
        // Reference: printf '8613812345678' | sha256sum
        assert_eq!(
            phone_sha256("13812345678").unwrap(),
            sha256_hex("8613812345678")
        );
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
