//! What the meta protocol needs of a shard beyond the classic commands: reading an
//! item without counting the read (and seeing whether it had been read before), the
//! per-item meta bits (stale, win token sent, binary key: `item::META_*`), a store
//! that compares CAS for every mode and can write a stale value, a delete that marks
//! stale instead. memcached's semantics are in `crate::commands::meta`; this is the
//! mechanism.

use super::item::{self, Header, META_KEY_BINARY, META_STALE, META_TOKEN_SENT};
use super::{item_size_ok, Loc, Shard, StoreMode, StoreOutcome};

/// An item as a meta command sees it, before the command changed anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetaItem<'a> {
    pub flags: u32,
    pub cas: u64,
    pub value: &'a [u8],
    /// 0: never expires.
    pub exptime: u32,
    /// Read at least once since it was stored (memcached's ITEM_FETCHED).
    pub fetched: bool,
    /// Server time its record was written or last kept by eviction: our stand-in for
    /// memcached's last access time.
    pub written: u32,
    /// `item::META_*` bits.
    pub meta: u8,
}

impl MetaItem<'_> {
    pub fn key_binary(&self) -> bool {
        self.meta & META_KEY_BINARY != 0
    }
    pub fn stale(&self) -> bool {
        self.meta & META_STALE != 0
    }
    pub fn token_sent(&self) -> bool {
        self.meta & META_TOKEN_SENT != 0
    }
}

/// What `mg` is to do beyond reading, its times already on the server clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MetaGetPlan {
    /// `T`: the item's new exptime on a hit.
    pub touch: Option<u32>,
    /// `N`: on a miss, create an empty item with this exptime (and win its token).
    pub vivify: Option<u32>,
    /// `R`: win the token when the item's exptime (as of R's place among the flags:
    /// after T when `recache_after_touch`) is set and earlier than this.
    pub recache: Option<u32>,
    pub recache_after_touch: bool,
    /// Count the read (`u` turns this off).
    pub bump: bool,
}

/// The result of `mg` on a live (or just created) item: the item as it was before this
/// request (`before.value` and `cas` are the current ones), whether the request created
/// it, and whether it won the right to recache (`W`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetaGet<'a> {
    pub before: MetaItem<'a>,
    pub created: bool,
    pub won: bool,
}

/// What `ms` stores: the mode after memcached's CAS promotion (set and replace with a
/// compare value are `Cas`), `compare` 0 meaning no compare value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetaStore {
    pub mode: StoreMode,
    pub flags: u32,
    pub exptime: u32,
    pub compare: u64,
    /// `I` on a CAS store: a compare value older than the item's stores the value as
    /// stale (keeping the item's exptime and token) instead of failing.
    pub stale: bool,
    pub key_binary: bool,
}

/// What `md` came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaDelete {
    NotFound,
    /// The compare value did not match.
    Exists,
    Deleted,
    /// `I`: kept, marked stale, with a new CAS.
    Marked,
}

/// What the read-only part of `ma` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaArith {
    NotFound,
    Exists,
    NonNumeric,
}

impl Shard {
    /// A live item without counting the read (`me`, `ma`'s checks).
    pub fn meta_peek(&mut self, key: &[u8], now: u32) -> Option<MetaItem<'_>> {
        let hash = self.hash(key);
        let (_, loc, h) = self.find_live(key, hash, now)?;
        Some(self.meta_item(loc, h))
    }

    /// `mg`: see [`MetaGetPlan`]. None: a miss (and no vivify, or no room for it).
    pub fn meta_get(&mut self, key: &[u8], plan: &MetaGetPlan, now: u32) -> Option<MetaGet<'_>> {
        let hash = self.hash(key);
        let (mut loc, h, created) = match self.find_live(key, hash, now) {
            Some((_, loc, h)) => (loc, h, false),
            None => {
                let exptime = plan.vivify?;
                let cas = self.next_cas();
                let loc = self.write_item(key, hash, b"", 0, exptime, cas, 0, META_TOKEN_SENT, now)?;
                self.c.total_items += 1;
                (loc, self.header(loc), true)
            }
        };
        let written = self.pool.segs[loc.seg as usize].started;
        let fetched = h.mask & item::FETCHED != 0;
        // As memcached allocates a vivified item: no expiry, no token, until the flags apply.
        let (before_exptime, before_meta) = if created { (0, 0) } else { (h.exptime, h.meta) };
        let mut won = created;
        // The header as the item now stands: `h` unless amended (a read mark changes
        // no field the reply shows), so a plain mg parses it once.
        let mut now_h = h;
        if !created {
            let exptime = plan.touch.unwrap_or(h.exptime);
            let token_sent = h.meta & META_TOKEN_SENT != 0;
            if let Some(recache) = plan.recache {
                let at_r = if plan.recache_after_touch { exptime } else { h.exptime };
                won |= !token_sent && at_r != 0 && at_r < recache;
            }
            won |= h.meta & META_STALE != 0 && !token_sent;
            let meta = if won { h.meta | META_TOKEN_SENT } else { h.meta };
            if exptime != h.exptime || meta != h.meta {
                loc = self.amend(key, hash, loc, h, exptime, meta, h.cas, now).unwrap_or(loc);
                now_h = self.header(loc);
            }
        }
        if plan.bump {
            self.mark_read(loc);
        }
        let before = MetaItem {
            flags: h.flags,
            cas: now_h.cas,
            value: self.value_at(loc, now_h),
            exptime: before_exptime,
            fetched,
            written,
            meta: before_meta,
        };
        Some(MetaGet { before, created, won })
    }

    /// `ms`: see [`MetaStore`]. Returns the outcome and, when stored, the new CAS.
    pub fn meta_store(&mut self, key: &[u8], value: &[u8], req: &MetaStore, now: u32) -> (StoreOutcome, u64) {
        let max = self.config.item_size_max;
        if key.is_empty() || key.len() > 250 {
            return (StoreOutcome::NotStored, 0);
        }
        let hash = self.hash(key);
        if !item_size_ok(key.len(), value.len(), max) {
            // memcached's ms drops the old value whatever the mode.
            self.delete(key, now);
            return (StoreOutcome::TooLarge, 0);
        }
        let existing = self.find_live(key, hash, now);
        let mut meta = if req.key_binary { META_KEY_BINARY } else { 0 };
        let (mut flags, mut exptime) = (req.flags, req.exptime);
        let mut buf = std::mem::take(&mut self.scratch);
        let mut combined = false;
        match (req.mode, existing) {
            (StoreMode::Add, Some((_, loc, _))) => {
                self.mark_read(loc);
                self.scratch = buf;
                return (StoreOutcome::NotStored, 0);
            }
            (StoreMode::Replace | StoreMode::Append | StoreMode::Prepend, None) => {
                self.scratch = buf;
                return (StoreOutcome::NotStored, 0);
            }
            (StoreMode::Cas, None) => {
                self.scratch = buf;
                return (StoreOutcome::NotFound, 0);
            }
            (StoreMode::Cas, Some((_, _, h))) => {
                if req.compare == 0 || req.compare != h.cas {
                    if req.stale && req.compare != 0 && req.compare < h.cas {
                        exptime = h.exptime;
                        meta |= META_STALE | (h.meta & META_TOKEN_SENT);
                    } else {
                        self.scratch = buf;
                        return (StoreOutcome::Exists, 0);
                    }
                }
            }
            (StoreMode::Append | StoreMode::Prepend, Some((_, loc, h))) => {
                if req.compare != 0 && req.compare != h.cas {
                    self.scratch = buf;
                    return (StoreOutcome::Exists, 0);
                }
                if !item_size_ok(key.len(), h.value_len + value.len(), max) {
                    self.scratch = buf;
                    return (StoreOutcome::NotStored, 0);
                }
                let old = self.value_at(loc, h);
                buf.clear();
                if req.mode == StoreMode::Append {
                    buf.extend_from_slice(old);
                    buf.extend_from_slice(value);
                } else {
                    buf.extend_from_slice(value);
                    buf.extend_from_slice(old);
                }
                (flags, exptime, meta) = (h.flags, h.exptime, 0);
                combined = true;
            }
            _ => {}
        }
        let value = if combined { &buf[..] } else { value };
        let outcome = if exptime != 0 && exptime <= now {
            // Stored and at once gone: only the old version has to go.
            if let Some((slot, loc, h)) = existing {
                self.unlink(slot, loc, h);
            }
            self.c.total_items += 1;
            (StoreOutcome::Stored, self.next_cas())
        } else {
            let cas = self.next_cas();
            match self.write_item(key, hash, value, flags, exptime, cas, 0, meta, now) {
                Some(_) => {
                    self.c.total_items += 1;
                    (StoreOutcome::Stored, cas)
                }
                None if combined => (StoreOutcome::NotStored, 0),
                None => {
                    self.delete(key, now);
                    (StoreOutcome::OutOfMemory, 0)
                }
            }
        };
        self.return_scratch(buf);
        outcome
    }

    /// `md`: delete, or with `stale` mark stale (new CAS, token cleared, exptime
    /// changed to `exptime` if given); `compare` must match the item's CAS if given.
    pub fn meta_delete(&mut self, key: &[u8], compare: Option<u64>, stale: bool, exptime: Option<u32>, now: u32) -> MetaDelete {
        let hash = self.hash(key);
        let Some((slot, loc, h)) = self.find_live(key, hash, now) else {
            return MetaDelete::NotFound;
        };
        if compare.is_some_and(|c| c != h.cas) {
            return MetaDelete::Exists;
        }
        if !stale {
            self.unlink(slot, loc, h);
            return MetaDelete::Deleted;
        }
        let cas = self.next_cas();
        let meta = (h.meta | META_STALE) & !META_TOKEN_SENT;
        self.amend(key, hash, loc, h, exptime.unwrap_or(h.exptime), meta, cas, now);
        MetaDelete::Marked
    }

    /// `ma`'s checks before the arithmetic, in memcached's order: a miss, an empty
    /// value (non-numeric), a CAS mismatch (`compare` 0: none). None: go ahead.
    pub fn meta_arith_check(&mut self, key: &[u8], compare: u64, now: u32) -> Option<MetaArith> {
        let Some(item) = self.meta_peek(key, now) else {
            return Some(MetaArith::NotFound);
        };
        if item.value.is_empty() {
            Some(MetaArith::NonNumeric)
        } else if compare != 0 && compare != item.cas {
            Some(MetaArith::Exists)
        } else {
            None
        }
    }

    fn meta_item(&self, loc: Loc, h: Header) -> MetaItem<'_> {
        MetaItem {
            flags: h.flags,
            cas: h.cas,
            value: self.value_at(loc, h),
            exptime: h.exptime,
            fetched: h.mask & item::FETCHED != 0,
            written: self.pool.segs[loc.seg as usize].started,
            meta: h.meta,
        }
    }

    /// Sets an item's exptime, meta bits and CAS: in place where its record has the
    /// fields, else by rewriting the record (value, flags and read state kept). None:
    /// no room for the rewrite (`-M`); the item is then unchanged.
    #[allow(clippy::too_many_arguments)]
    fn amend(&mut self, key: &[u8], hash: u64, loc: Loc, h: Header, exptime: u32, meta: u8, cas: u64, now: u32) -> Option<Loc> {
        let exptime_fits = exptime == h.exptime || h.exptime_off().is_some();
        let meta_fits = meta == h.meta || h.meta_off().is_some();
        if exptime_fits && meta_fits {
            let seg = &mut self.pool.segs[loc.seg as usize];
            let off = loc.off as usize;
            if let Some(e) = h.exptime_off() {
                seg.data[off + e..off + e + 4].copy_from_slice(&exptime.to_le_bytes());
                seg.note_exptime(exptime);
            }
            if let Some(m) = h.meta_off() {
                seg.data[off + m] = meta;
            }
            let c = off + h.cas_off();
            seg.data[c..c + 8].copy_from_slice(&cas.to_le_bytes());
            seg.note_cas(cas);
            return Some(loc);
        }
        let mut buf = std::mem::take(&mut self.scratch);
        buf.clear();
        buf.extend_from_slice(self.value_at(loc, h));
        let moved = self.write_item(key, hash, &buf, h.flags, exptime, cas, h.mask, meta, now);
        self.return_scratch(buf);
        moved
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreConfig;

    fn shard() -> Shard {
        Shard::new(StoreConfig { memory_limit: 8 << 20, item_size_max: 1 << 20, evict: true, shard_id: 0, shard_count: 1 })
    }

    fn set(s: &mut Shard, key: &[u8], value: &[u8], exptime: u32) -> u64 {
        let req = MetaStore { mode: StoreMode::Set, flags: 0, exptime, compare: 0, stale: false, key_binary: false };
        let (outcome, cas) = s.meta_store(key, value, &req, 10);
        assert_eq!(outcome, StoreOutcome::Stored);
        cas
    }

    const READ: MetaGetPlan = MetaGetPlan { touch: None, vivify: None, recache: None, recache_after_touch: false, bump: true };

    #[test]
    fn fetched_is_reported_before_the_read_counts() {
        let mut s = shard();
        set(&mut s, b"k", b"v", 0);
        let first = s.meta_get(b"k", &READ, 10).unwrap();
        assert!(!first.before.fetched);
        assert!(s.meta_get(b"k", &READ, 10).unwrap().before.fetched);
        let no_bump = MetaGetPlan { bump: false, ..READ };
        set(&mut s, b"u", b"v", 0);
        assert!(!s.meta_get(b"u", &no_bump, 10).unwrap().before.fetched);
        assert!(!s.meta_get(b"u", &no_bump, 10).unwrap().before.fetched);
    }

    #[test]
    fn stale_mark_wins_once_and_keeps_value() {
        let mut s = shard();
        let cas = set(&mut s, b"k", b"value", 0);
        assert_eq!(s.meta_delete(b"k", Some(cas + 1), true, None, 10), MetaDelete::Exists);
        assert_eq!(s.meta_delete(b"k", Some(cas), true, Some(50), 10), MetaDelete::Marked);
        let g = s.meta_get(b"k", &READ, 10).unwrap();
        assert!(g.won && g.before.stale() && !g.before.token_sent());
        assert_eq!((g.before.value, g.before.exptime), (&b"value"[..], 50));
        assert_ne!(g.before.cas, cas);
        let g = s.meta_get(b"k", &READ, 10).unwrap();
        assert!(!g.won && g.before.stale() && g.before.token_sent());
        // A stale write with the old CAS keeps it stale and the token sent.
        let req = MetaStore { mode: StoreMode::Cas, flags: 0, exptime: 90, compare: cas, stale: true, key_binary: false };
        let (outcome, new_cas) = s.meta_store(b"k", b"f", &req, 10);
        assert_eq!(outcome, StoreOutcome::Stored);
        let g = s.meta_get(b"k", &READ, 10).unwrap();
        assert!(g.before.stale() && g.before.token_sent() && !g.won);
        assert_eq!((g.before.exptime, g.before.cas), (50, new_cas));
        // The current CAS clears it.
        let req = MetaStore { compare: new_cas, stale: false, ..req };
        assert_eq!(s.meta_store(b"k", b"g", &req, 10).0, StoreOutcome::Stored);
        let g = s.meta_get(b"k", &READ, 10).unwrap();
        assert_eq!((g.before.meta, g.before.exptime, g.won), (0, 90, false));
    }

    #[test]
    fn vivify_creates_once_and_recache_wins_once() {
        let mut s = shard();
        let viv = MetaGetPlan { vivify: Some(40), ..READ };
        let g = s.meta_get(b"v", &viv, 10).unwrap();
        assert!(g.created && g.won && g.before.value.is_empty());
        let g = s.meta_get(b"v", &viv, 10).unwrap();
        assert!(!g.created && !g.won && g.before.token_sent());
        assert_eq!(g.before.exptime, 40);
        set(&mut s, b"r", b"x", 100);
        let r = MetaGetPlan { recache: Some(200), ..READ };
        assert!(s.meta_get(b"r", &r, 10).unwrap().won);
        assert!(!s.meta_get(b"r", &r, 10).unwrap().won);
        set(&mut s, b"n", b"x", 0);
        assert!(!s.meta_get(b"n", &r, 10).unwrap().won, "no expiry: no recache");
        assert!(s.meta_get(b"missing", &r, 10).is_none());
    }

    #[test]
    fn cas_modes_and_binary_keys() {
        let mut s = shard();
        let cas = set(&mut s, b"k", b"hi", 0);
        let append = MetaStore { mode: StoreMode::Append, flags: 9, exptime: 0, compare: cas + 1, stale: false, key_binary: false };
        assert_eq!(s.meta_store(b"k", b"x", &append, 10).0, StoreOutcome::Exists);
        let append = MetaStore { compare: cas, ..append };
        assert_eq!(s.meta_store(b"k", b"ho", &append, 10).0, StoreOutcome::Stored);
        assert_eq!(s.meta_peek(b"k", 10).unwrap().value, b"hiho");
        let zero = MetaStore { mode: StoreMode::Cas, compare: 0, ..append };
        assert_eq!(s.meta_store(b"k", b"x", &zero, 10).0, StoreOutcome::Exists);
        let bin = MetaStore { mode: StoreMode::Set, compare: 0, key_binary: true, ..append };
        s.meta_store(b"\0\xff", b"v", &bin, 10);
        assert!(s.meta_peek(b"\0\xff", 10).unwrap().key_binary());
        assert_eq!(s.meta_arith_check(b"nope", 0, 10), Some(MetaArith::NotFound));
        assert_eq!(s.meta_arith_check(b"k", 1, 10), Some(MetaArith::Exists));
    }
}
