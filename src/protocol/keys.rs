/// The keys of a multi-key command: the rest of its line, split on spaces as memcached's
/// tokenizer does (runs of spaces separate, nothing else does). Allocates nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keys<'a> {
    rest: &'a [u8],
}

impl<'a> Keys<'a> {
    pub fn new(rest: &'a [u8]) -> Self {
        Keys { rest }
    }
}

impl<'a> Iterator for Keys<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let start = self.rest.iter().position(|&b| b != b' ')?;
        let rest = &self.rest[start..];
        let end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
        self.rest = &rest[end..];
        Some(&rest[..end])
    }
}

#[cfg(test)]
mod tests {
    use super::Keys;

    #[test]
    fn splits_on_runs_of_spaces_only() {
        let keys: Vec<&[u8]> = Keys::new(b"  a bb\tc   d ").collect();
        assert_eq!(keys, vec![&b"a"[..], b"bb\tc", b"d"]);
        assert_eq!(Keys::new(b"   ").next(), None);
    }
}
