//! Rewriting an item's value where it lies (incr/decr's in-place update).

use super::{item, Rewrite, Shard};

impl Shard {
    /// Read-modify-write of an item's value (incr/decr): `f` reads the value and writes
    /// the new one into its second argument, or refuses (None). A new value of the same
    /// length is written in place, as memcached's in-place incr; another length makes a
    /// new record with the same flags and expiry. Either way the item gets a new cas
    /// unique.
    pub fn rewrite_value<T>(
        &mut self,
        key: &[u8],
        now: u32,
        f: impl FnOnce(&[u8], &mut Vec<u8>) -> Option<T>,
    ) -> Rewrite<T> {
        let hash = self.hash(key);
        let Some((_, loc, h)) = self.find_live(key, hash, now) else {
            return Rewrite::NotFound;
        };
        let mut buf = std::mem::take(&mut self.scratch);
        buf.clear();
        let Some(result) = f(self.value_at(loc, h), &mut buf) else {
            self.return_scratch(buf);
            return Rewrite::Refused;
        };
        let cas = self.next_cas();
        let outcome = if buf.len() == h.value_len {
            let seg = &mut self.pool.segs[loc.seg as usize];
            let off = loc.off as usize;
            seg.data[off + h.value_off()..off + h.total_len()].copy_from_slice(&buf);
            seg.data[off + h.cas_off()..off + h.cas_off() + 8].copy_from_slice(&cas.to_le_bytes());
            seg.data[off] = item::read_once(seg.data[off]);
            seg.note_cas(cas);
            Rewrite::Done(result)
        } else {
            let bits = item::read_once(h.mask);
            match self.write_item(key, hash, &buf, h.flags, h.exptime, cas, bits, 0, now) {
                Some(_) => {
                    self.c.total_items += 1;
                    Rewrite::Done(result)
                }
                None => Rewrite::NoMemory,
            }
        };
        self.return_scratch(buf);
        outcome
    }
}
