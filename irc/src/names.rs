//! Nick and channel names: validation and RFC 1459 case folding.

/// RFC 1459 case folding: ASCII lower case, plus `[]\~` as the lower case
/// of `{}|^`.
pub fn irc_lower(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'A'..='Z' => c.to_ascii_lowercase(),
            '[' => '{',
            ']' => '}',
            '\\' => '|',
            '~' => '^',
            _ => c,
        })
        .collect()
}

/// A nick: 1 to 30 characters of letters, digits and `[]\`_^{|}-`, not
/// starting with a digit or `-`.
pub fn is_valid_nick(nick: &str) -> bool {
    let special = |c: char| "[]\\`_^{|}".contains(c);
    let mut chars = nick.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || special(c) => {}
        _ => return false,
    }
    nick.len() <= 30 && chars.all(|c| c.is_ascii_alphanumeric() || special(c) || c == '-')
}

/// A channel name: `#` or `&`, then 1 to 49 characters with no space,
/// comma, colon, BEL or control character.
pub fn is_valid_channel(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('#') | Some('&'))
        && name.len() > 1
        && name.len() <= 50
        && chars.all(|c| !c.is_control() && c != ' ' && c != ',' && c != ':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_valid_nick("alice"));
        assert!(is_valid_nick("[bot]_2"));
        assert!(!is_valid_nick("2fast"));
        assert!(!is_valid_nick("-x"));
        assert!(!is_valid_nick("a b"));
        assert!(!is_valid_nick(""));
        assert!(!is_valid_nick(&"n".repeat(31)));
        assert!(is_valid_channel("#rust"));
        assert!(is_valid_channel("&local"));
        assert!(!is_valid_channel("rust"));
        assert!(!is_valid_channel("#"));
        assert!(!is_valid_channel("#a,b"));
        assert!(!is_valid_channel("#a\x07"));
        assert_eq!(irc_lower("Alice[X]"), "alice{x}");
        assert_eq!(irc_lower("a\\b~"), irc_lower("A|B^"));
    }
}
