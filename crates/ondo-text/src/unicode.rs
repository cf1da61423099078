//! Unicode helpers mirroring llama.cpp's `unicode.cpp`: per-codepoint category flags,
//! the whitespace set, and GPT-2's byte <-> unicode mapping used by byte-level BPE.

use unicode_general_category::{get_general_category, GeneralCategory as G};

pub(crate) const F_NUMBER: u8 = 1 << 0;
pub(crate) const F_LETTER: u8 = 1 << 1;
pub(crate) const F_PUNCT: u8 = 1 << 2;
pub(crate) const F_ACCENT: u8 = 1 << 3;
pub(crate) const F_SYMBOL: u8 = 1 << 4;
pub(crate) const F_WHITESPACE: u8 = 1 << 5;
/// Set for every in-range codepoint (llama.cpp's `flags.as_uint() != 0`).
pub(crate) const F_DEFINED: u8 = 1 << 6;

/// llama.cpp's whitespace set (Unicode `White_Space`).
pub(crate) fn is_whitespace(c: char) -> bool {
    matches!(
        c as u32,
        0x09..=0x0D
            | 0x20
            | 0x85
            | 0xA0
            | 0x1680
            | 0x2000..=0x200A
            | 0x2028
            | 0x2029
            | 0x202F
            | 0x205F
            | 0x3000
    )
}

/// Category flags of one codepoint (always includes `F_DEFINED`).
pub(crate) fn flags(c: char) -> u8 {
    let cat = match get_general_category(c) {
        G::DecimalNumber | G::LetterNumber | G::OtherNumber => F_NUMBER,
        G::UppercaseLetter
        | G::LowercaseLetter
        | G::TitlecaseLetter
        | G::ModifierLetter
        | G::OtherLetter => F_LETTER,
        G::ConnectorPunctuation
        | G::DashPunctuation
        | G::OpenPunctuation
        | G::ClosePunctuation
        | G::InitialPunctuation
        | G::FinalPunctuation
        | G::OtherPunctuation => F_PUNCT,
        G::NonspacingMark | G::SpacingMark | G::EnclosingMark => F_ACCENT,
        G::MathSymbol | G::CurrencySymbol | G::ModifierSymbol | G::OtherSymbol => F_SYMBOL,
        _ => 0,
    };
    let ws = if is_whitespace(c) { F_WHITESPACE } else { 0 };
    cat | ws | F_DEFINED
}

/// GPT-2 `bytes_to_unicode`: the printable stand-in for each byte.
pub(crate) fn byte_to_char(b: u8) -> char {
    BYTE_TO_CHAR[b as usize]
}

/// Inverse of [`byte_to_char`]; `None` for characters outside the 256-entry mapping.
pub(crate) fn char_to_byte(c: char) -> Option<u8> {
    let u = c as u32;
    if is_printable_byte(u) {
        return Some(u as u8);
    }
    if (256..256 + 68).contains(&u) {
        let n = (u - 256) as usize;
        return NON_PRINTABLE.get(n).copied();
    }
    None
}

fn is_printable_byte(u: u32) -> bool {
    (0x21..=0x7E).contains(&u) || (0xA1..=0xAC).contains(&u) || (0xAE..=0xFF).contains(&u)
}

/// Bytes that are not printable, in increasing order (68 of them).
const NON_PRINTABLE: [u8; 68] = {
    let mut out = [0u8; 68];
    let mut n = 0;
    let mut b = 0u32;
    while b < 256 {
        if !((0x21 <= b && b <= 0x7E) || (0xA1 <= b && b <= 0xAC) || (0xAE <= b && b <= 0xFF)) {
            out[n] = b as u8;
            n += 1;
        }
        b += 1;
    }
    out
};

const BYTE_TO_CHAR: [char; 256] = {
    let mut out = ['\0'; 256];
    let mut n = 0u32;
    let mut b = 0u32;
    while b < 256 {
        let printable =
            (0x21 <= b && b <= 0x7E) || (0xA1 <= b && b <= 0xAC) || (0xAE <= b && b <= 0xFF);
        let cp = if printable {
            b
        } else {
            n += 1;
            256 + n - 1
        };
        out[b as usize] = match char::from_u32(cp) {
            Some(c) => c,
            None => '\0',
        };
        b += 1;
    }
    out
};

/// Encode raw UTF-8 bytes into GPT-2's byte-level alphabet.
pub(crate) fn byte_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    for &b in s.as_bytes() {
        out.push(byte_to_char(b));
    }
    out
}

/// llama.cpp's `llama_decode_text`: map a byte-level token back to raw bytes.
/// Characters outside the mapping produce llama.cpp's `[UNK_BYTE_0x..]` marker.
pub(crate) fn byte_decode(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        match char_to_byte(c) {
            Some(b) => out.push(b),
            None => {
                out.extend_from_slice(b"[UNK_BYTE_0x");
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).as_bytes() {
                    out.extend_from_slice(format!("{b:02x}").as_bytes());
                }
                out.extend_from_slice(text.as_bytes());
                out.push(b']');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_map_roundtrip() {
        for b in 0..=255u8 {
            assert_eq!(char_to_byte(byte_to_char(b)), Some(b), "byte {b}");
        }
        assert_eq!(byte_to_char(b' '), 'Ġ');
        assert_eq!(byte_to_char(b'\n'), 'Ċ');
        assert_eq!(byte_to_char(b'A'), 'A');
    }

    #[test]
    fn categories() {
        assert_ne!(flags('a') & F_LETTER, 0);
        assert_ne!(flags('한') & F_LETTER, 0);
        assert_ne!(flags('7') & F_NUMBER, 0);
        assert_ne!(flags('²') & F_NUMBER, 0);
        assert_ne!(flags('!') & F_PUNCT, 0);
        assert_ne!(flags('$') & F_SYMBOL, 0);
        assert_ne!(flags('\u{301}') & F_ACCENT, 0);
        assert_ne!(flags('\u{3000}') & F_WHITESPACE, 0);
        assert_eq!(flags('\u{200B}') & F_WHITESPACE, 0);
    }
}
