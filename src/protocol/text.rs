use super::{Limits, Parsed};

/// Parses the request at the front of `buf`.
pub fn parse<'a>(_buf: &'a [u8], _limits: &Limits) -> Parsed<'a> {
    Parsed::Incomplete { need: 0 }
}
