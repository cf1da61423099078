//! String formats of JSON Schema that structured outputs use most (pydantic's `datetime`,
//! `date`, `time` and `UUID` fields), recognized byte by byte between the quotes:
//!
//! - `date`: RFC 3339 full-date `YYYY-MM-DD`, a real calendar day (month lengths, leap years;
//!   year 0001 on, as Python's `datetime` takes);
//! - `time`: RFC 3339 full-time `HH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)` (seconds 00-59: no leap
//!   second, which Python refuses; fraction of 1-9 digits);
//! - `date-time`: the two joined by `T`;
//! - `uuid`: 8-4-4-4-12 hex digits.
//!
//! The state is a few bytes (`Copy`): which slot of the format comes next, and the year,
//! month and last tens digit that later digits depend on.

/// A supported `format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    Date,
    Time,
    DateTime,
    Uuid,
}

impl Format {
    /// The format named `name`, if supported.
    pub fn named(name: &str) -> Option<Format> {
        Some(match name {
            "date" => Format::Date,
            "time" => Format::Time,
            "date-time" => Format::DateTime,
            "uuid" => Format::Uuid,
            _ => return None,
        })
    }

    fn slots(self) -> &'static [Slot] {
        use Slot::*;
        const DATE: &[Slot] = &[Year, Year, Year, Year, Dash, MonT, MonO, Dash, DayT, DayO];
        const TIME: &[Slot] = &[
            HourT, HourO, Colon, MinT, MinO, Colon, MinT, MinO, Frac, Offset,
        ];
        const DATE_TIME: &[Slot] = &[
            Year, Year, Year, Year, Dash, MonT, MonO, Dash, DayT, DayO, Tee, HourT, HourO, Colon,
            MinT, MinO, Colon, MinT, MinO, Frac, Offset,
        ];
        const UUID: &[Slot] = &[
            Hex, Hex, Hex, Hex, Hex, Hex, Hex, Hex, Dash, Hex, Hex, Hex, Hex, Dash, Hex, Hex, Hex,
            Hex, Dash, Hex, Hex, Hex, Hex, Dash, Hex, Hex, Hex, Hex, Hex, Hex, Hex, Hex, Hex, Hex,
            Hex, Hex,
        ];
        match self {
            Format::Date => DATE,
            Format::Time => TIME,
            Format::DateTime => DATE_TIME,
            Format::Uuid => UUID,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    Year,
    Dash,
    MonT,
    MonO,
    DayT,
    DayO,
    Tee,
    HourT,
    HourO,
    Colon,
    /// Tens of minutes or seconds (0-5), then their ones.
    MinT,
    MinO,
    /// An optional `.` and 1-9 digits.
    Frac,
    /// `Z`, or a sign and `HH:MM`.
    Offset,
    Hex,
}

/// Where a formatted string stands (after its opening quote).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FormatState {
    format: Format,
    /// Index of the next slot; past the last: only the closing quote.
    slot: u8,
    /// Inside `Frac`: digits after the `.` plus one (0: no `.` yet). Inside `Offset`: bytes
    /// of the offset read (0: none).
    sub: u8,
    year: u16,
    month: u8,
    /// The tens digit just read (months, days, hours).
    tens: u8,
}

/// What one byte does to a formatted string.
#[derive(Debug, PartialEq, Eq)]
pub enum FormatStep {
    Reject,
    /// The closing quote.
    End,
    Go,
}

fn days_in(year: u16, month: u8) -> u8 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

impl FormatState {
    pub fn new(format: Format) -> Self {
        FormatState {
            format,
            slot: 0,
            sub: 0,
            year: 0,
            month: 0,
            tens: 0,
        }
    }

    pub fn feed(&mut self, b: u8) -> FormatStep {
        let slots = self.format.slots();
        let Some(&slot) = slots.get(self.slot as usize) else {
            return if b == b'"' {
                FormatStep::End
            } else {
                FormatStep::Reject
            };
        };
        let d = b.wrapping_sub(b'0');
        let digit = |lo: u8, hi: u8| b.is_ascii_digit() && (lo..=hi).contains(&d);
        let ok = match slot {
            Slot::Year => {
                // Year 0000 does not exist for Python's datetime.
                let ok = digit(0, 9) && !(self.slot == 3 && self.year == 0 && d == 0);
                if ok {
                    self.year = self.year * 10 + d as u16;
                }
                ok
            }
            Slot::Dash => b == b'-',
            Slot::Colon => b == b':',
            Slot::Tee => b == b'T',
            Slot::Hex => b.is_ascii_hexdigit(),
            Slot::MonT | Slot::HourT | Slot::DayT | Slot::MinT => {
                let hi = match slot {
                    Slot::MonT => 1,
                    Slot::HourT => 2,
                    Slot::MinT => 5,
                    _ => days_in(self.year, self.month) / 10,
                };
                self.tens = d;
                digit(0, hi)
            }
            Slot::MonO => {
                let ok = match self.tens {
                    0 => digit(1, 9),
                    _ => digit(0, 2),
                };
                if ok {
                    self.month = self.tens * 10 + d;
                }
                ok
            }
            Slot::DayO => {
                let max = days_in(self.year, self.month);
                match self.tens {
                    0 => digit(1, 9),
                    t if t == max / 10 => digit(0, max % 10),
                    _ => digit(0, 9),
                }
            }
            Slot::HourO => digit(0, if self.tens == 2 { 3 } else { 9 }),
            Slot::MinO => digit(0, 9),
            Slot::Frac => return self.frac(b),
            Slot::Offset => return self.offset(b),
        };
        if !ok {
            return FormatStep::Reject;
        }
        self.slot += 1;
        FormatStep::Go
    }

    /// `.` and 1-9 digits, or nothing: then `b` belongs to the offset.
    fn frac(&mut self, b: u8) -> FormatStep {
        match (self.sub, b) {
            (0, b'.') => self.sub = 1,
            (1..=9, b'0'..=b'9') => self.sub += 1,
            (1, _) => return FormatStep::Reject,
            _ => {
                self.slot += 1;
                self.sub = 0;
                return self.offset(b);
            }
        }
        FormatStep::Go
    }

    /// `Z`, or `+HH:MM` / `-HH:MM`.
    fn offset(&mut self, b: u8) -> FormatStep {
        let d = b.wrapping_sub(b'0');
        let ok = match (self.sub, b) {
            (0, b'Z') => {
                self.slot += 1;
                return FormatStep::Go;
            }
            (0, b'+' | b'-') => true,
            (1, b'0'..=b'2') => {
                self.tens = d;
                true
            }
            (2, b'0'..=b'9') => self.tens < 2 || d <= 3,
            (3, b':') => true,
            (4, b'0'..=b'5') => true,
            (5, b'0'..=b'9') => {
                self.slot += 1;
                return FormatStep::Go;
            }
            _ => false,
        };
        if !ok {
            return FormatStep::Reject;
        }
        self.sub += 1;
        FormatStep::Go
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(f: Format, text: &str) -> Result<(), usize> {
        let mut st = FormatState::new(f);
        for (i, b) in text.bytes().chain(Some(b'"')).enumerate() {
            match st.feed(b) {
                FormatStep::Reject => return Err(i),
                FormatStep::End if i == text.len() => return Ok(()),
                FormatStep::End => return Err(i),
                FormatStep::Go => {}
            }
        }
        unreachable!("the closing quote ends or is refused")
    }

    #[test]
    fn valid_values_are_read_and_invalid_ones_refused_where_they_break() {
        for (f, t) in [
            (Format::Date, "2024-02-29"),
            (Format::Date, "0001-12-31"),
            (Format::Date, "2023-04-30"),
            (Format::Time, "23:59:59Z"),
            (Format::Time, "00:00:00.123456789+05:30"),
            (Format::DateTime, "2000-02-29T12:30:00-23:59"),
            (Format::Uuid, "123e4567-e89b-12d3-A456-426614174000"),
        ] {
            assert_eq!(read(f, t), Ok(()), "{t}");
        }
        for (f, t, at) in [
            (Format::Date, "2023-02-29", 9),
            (Format::Date, "1900-02-29", 9),
            (Format::Date, "2023-04-31", 9),
            (Format::Date, "2023-13-01", 6),
            (Format::Date, "2023-00-01", 6),
            (Format::Date, "2023-01-00", 9),
            (Format::Date, "0000-01-01", 3),
            (Format::Date, "2023-1-01", 6),
            (Format::Date, "2023-01-011", 10),
            (Format::Time, "24:00:00Z", 1),
            (Format::Time, "12:60:00Z", 3),
            (Format::Time, "12:00:60Z", 6),
            (Format::Time, "12:00:00", 8),
            (Format::Time, "12:00:00.Z", 9),
            (Format::Time, "12:00:00.1234567890Z", 18),
            (Format::Time, "12:00:00+24:00", 10),
            (Format::DateTime, "2024-01-01 12:00:00Z", 10),
            (Format::Uuid, "123e4567-e89b-12d3-a456-42661417400", 35),
            (Format::Uuid, "123e4567e89b", 8),
        ] {
            assert_eq!(read(f, t), Err(at), "{t}");
        }
    }
}
