//! Masking of personal data for every output a caller without the PII scope
//! sees: `138****5678`, `w***@example.cn`, `王*`, `310***********1234`.
//!
//! ```
//! use cdp_core::pii;
//! assert_eq!(pii::mask_phone("+86 138-1234-5678"), "138****5678");
//! assert_eq!(pii::mask_email(" Wang.Wei@Example.cn"), "w***@example.cn");
//! assert_eq!(pii::mask_name("王小明"), "王**");
//! ```

/// Masks a phone number: first three and last four national digits kept.
pub fn mask_phone(raw: &str) -> String {
    let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
    let digits = digits.strip_prefix("00").unwrap_or(&digits);
    let national = match digits.strip_prefix("86") {
        Some(rest) if rest.len() >= 7 => rest,
        _ => digits,
    };
    if national.len() < 7 {
        return "*".repeat(national.len().max(4));
    }
    let (head, tail) = (&national[..3], &national[national.len() - 4..]);
    format!("{head}{}{tail}", "*".repeat(national.len() - 7))
}

/// Masks an e-mail: first character of the local part, then `***`, domain kept.
pub fn mask_email(raw: &str) -> String {
    let email = raw.trim().to_lowercase();
    match email.split_once('@') {
        Some((local, domain)) => {
            let first = local.chars().next().map(String::from).unwrap_or_default();
            format!("{first}***@{domain}")
        }
        None => "***".into(),
    }
}

/// Masks a name: the first character of each word kept.
pub fn mask_name(raw: &str) -> String {
    raw.split(' ')
        .map(|word| {
            word.chars()
                .enumerate()
                .map(|(i, c)| {
                    if i == 0 || !c.is_alphanumeric() {
                        c
                    } else {
                        '*'
                    }
                })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Masks an identity-document number: first three and last four kept.
pub fn mask_id_number(raw: &str) -> String {
    let chars: Vec<char> = raw.trim().chars().collect();
    if chars.len() <= 7 {
        return "*".repeat(chars.len());
    }
    let n = chars.len();
    chars
        .iter()
        .enumerate()
        .map(|(i, c)| if i < 3 || i >= n - 4 { *c } else { '*' })
        .collect()
}

/// Masks any other personal text (a social handle, an IP address): the
/// first character kept, the rest replaced by `***`.
pub fn mask_text(raw: &str) -> String {
    let trimmed = raw.trim();
    match trimmed.chars().next() {
        Some(first) => format!("{first}***"),
        None => String::new(),
    }
}

/// The masking function for a PII column, by column name: phones, e-mails,
/// names and id numbers keep their recognisable edges, anything else
/// [`mask_text`].
pub fn mask_for_column(column: &str) -> fn(&str) -> String {
    match column {
        "phone" => mask_phone,
        "email" => mask_email,
        "full_name" => mask_name,
        "id_number" => mask_id_number,
        _ => mask_text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_keep_only_the_edges() {
        assert_eq!(mask_phone("13812345678"), "138****5678");
        assert_eq!(mask_phone("8613812345678"), "138****5678");
        assert_eq!(mask_phone("0086 138 1234 5678"), "138****5678");
        assert_eq!(mask_phone("123"), "****");
        assert_eq!(mask_email("w@example.cn"), "w***@example.cn");
        assert_eq!(mask_email("broken"), "***");
        assert_eq!(mask_name("Li, Wei"), "L*, W**");
        assert_eq!(mask_name("王伟"), "王*");
        assert_eq!(mask_id_number("31010119900101123X"), "310***********123X");
        assert_eq!(mask_id_number("E1234"), "*****");
        assert_eq!(mask_text("@wei_travels"), "@***");
        assert_eq!(mask_text("223.1.78.7"), "2***");
        assert_eq!(mask_for_column("phone")("13812345678"), "138****5678");
    }
}
