//! Warm restart (`-e PATH`, `--restart-dir DIR`): on SIGTERM, SIGINT, SIGUSR1 or
//! `shutdown` every core writes its shard to `<base>.<core>` (`restart_file.rs`); at
//! start every core loads, before the server reports itself ready.
//!
//! - Start (`prepare`, main thread, after the listeners are bound): read every file's
//!   header and decide whether the save is usable: all files of one save present and of
//!   this format version, item layout and machine. The key → core hash seeds come from
//!   the save, so with the same core count each key has the same owner as before.
//! - Load (`load_on_core`, each executor): with the same core count, segment size and
//!   no smaller `-I`, each core reads its own file's segments straight into new
//!   segments (the newest that fit when `-m` is smaller) and rebuilds its index.
//!   Otherwise each core reads every file, oldest segments first, and stores the items
//!   whose key it now owns, evicting the oldest when they do not all fit. Expiry times
//!   are moved to the new clock through the wall-clock time of the save; items that
//!   expired in the gap are not loaded. The CAS counter continues above the highest
//!   CAS of the save. A delayed `flush_all` that came due during the gap empties it.
//! - All or nothing: the cores meet at a barrier; if any file failed its checks, every
//!   core empties its shard and one line says why. Either way the files are removed
//!   once loaded, so a crash later can never bring back what they held.
//! - Stop (`save_on_core`): after the drain, each core writes `<base>.<core>.tmp`,
//!   syncs it and renames it into place, within `--restart-save-timeout` (8 s by
//!   default: with the drain's 5 s, within the unit's TimeoutStopSec=15). If any core fails
//!   (full disk, file size limit, timeout), `finish_save` removes every file of the
//!   save and says why: the next start is empty, never partial.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Barrier, Mutex};
use std::time::Instant;

use super::clock::Clock;
use super::core::Core;
use super::restart_file::{self, FileError, Header, Reader, ITEM_LAYOUT};
use crate::commands::flush;
use crate::config::{Config, MemoryFile};
use crate::store::{saved_records, shift_exptime, AdoptError, Shard};


/// What the start found, and what the load did: shared by every core.
pub struct State {
    pub file: MemoryFile,
    plan: Option<Plan>,
    barrier: Barrier,
    /// First reason a core could not load its part.
    load_failed: Mutex<Option<String>>,
    pub restored: AtomicBool,
    pub items: AtomicU64,
    pub load_micros: AtomicU64,
    started: Instant,
    save_id: u64,
    save_started: Mutex<Option<Instant>>,
    save_failed: Mutex<Option<String>>,
    saved_items: AtomicU64,
}

/// A usable save, as `prepare` found it.
struct Plan {
    files: Vec<PathBuf>,
    /// Each file's arena (where its "SEGA" segments are).
    arenas: Vec<PathBuf>,
    headers: Vec<Header>,
    /// Old clock origin minus the new one's, in seconds.
    delta: i64,
    cas_high: u64,
    /// A delayed flush_all came due while no process ran: nothing is loaded.
    flushed_in_gap: bool,
}

/// What `stats` shows about the last start.
pub struct Facts {
    pub restored: bool,
    pub items: u64,
    pub load_seconds: f64,
}

impl State {
    pub fn facts(&self) -> Facts {
        Facts {
            restored: self.restored.load(Relaxed),
            items: self.items.load(Relaxed),
            load_seconds: self.load_micros.load(Relaxed) as f64 / 1e6,
        }
    }

    /// The route seeds of the save, if one will be loaded.
    pub fn route_seeds(&self) -> Option<[u64; 4]> {
        self.plan.as_ref().map(|p| p.headers[0].route_seeds)
    }
}

/// The file of `core`'s shard.
fn shard_path(file: &MemoryFile, core: usize) -> PathBuf {
    let mut p = file.base.clone().into_os_string();
    p.push(format!(".{core}"));
    PathBuf::from(p)
}

/// The arena file of `core`'s shard (see `store::segment::Arena`): where its segments
/// live while it runs, when the file is on tmpfs.
fn arena_path(file: &MemoryFile, core: usize) -> PathBuf {
    let mut p = file.base.clone().into_os_string();
    p.push(format!(".{core}.arena"));
    PathBuf::from(p)
}

/// Whether `dir` is a tmpfs (or ramfs): segments may live in a file there. Anywhere
/// else (a disk, for a save that survives reboots) a shared mapping would write the
/// whole cache back to the disk, so segments stay on the heap and a save writes them.
fn on_tmpfs(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else { return false };
    // SAFETY: statfs into a zeroed struct we own; the path is NUL-terminated.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return false;
    }
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    const RAMFS_MAGIC: i64 = 0x8584_58f6;
    matches!(st.f_type as i64, TMPFS_MAGIC | RAMFS_MAGIC)
}

/// Gives `shard` its arena file (created if missing; emptied unless `keep`), locked so
/// that no second process on the same files maps it. Err: why segments stay on the heap.
fn attach_arena(file: &MemoryFile, core: usize, shard: &mut Shard, slots: usize, keep: bool) -> Result<(), String> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let path = arena_path(file, core);
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !on_tmpfs(dir) {
        return Err("not on tmpfs".into());
    }
    let named = |e: std::io::Error| format!("{}: {e}", path.display());
    let f = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o600).open(&path).map_err(named)?;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(format!("{} is in use by another process", path.display()));
    }
    shard.use_arena(f, slots, keep).map_err(|e| {
        let _ = std::fs::remove_file(&path);
        named(e)
    })
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".tmp");
    PathBuf::from(p)
}

/// A stable id of this machine (`/etc/machine-id`), 0 when there is none.
fn machine_id() -> u64 {
    let id = std::fs::read_to_string("/etc/machine-id")
        .or_else(|_| std::fs::read_to_string("/var/lib/dbus/machine-id"))
        .unwrap_or_default();
    let id = id.trim();
    if id.is_empty() {
        return 0;
    }
    // FNV-1a: stable across builds, unlike the std and ahash hashers.
    id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// At start, before the executors: finds the save and checks it. Prints one line when
/// a save exists but cannot be used (and removes it).
pub fn prepare(config: &Config, clock: &Clock) -> Option<State> {
    let file = config.memory_file.clone()?;
    // A file size limit (ulimit -f) must fail the write, not kill the process.
    // SAFETY: setting a signal's disposition to SIG_IGN has no preconditions.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    if file.directory {
        if let Err(e) = std::fs::create_dir_all(&file.given) {
            eprintln!("warm restart: cannot create {}: {e}; the cache will not be kept", file.given.display());
        }
    }
    let started = Instant::now();
    let plan = match find_save(&file, config, clock) {
        Ok(plan) => plan,
        Err(why) => {
            eprintln!("warm restart: not restoring {}: {why}; starting empty", file.given.display());
            remove_saves(&file, true);
            None
        }
    };
    Some(State {
        barrier: Barrier::new(config.threads),
        file,
        plan,
        load_failed: Mutex::new(None),
        restored: AtomicBool::new(false),
        items: AtomicU64::new(0),
        load_micros: AtomicU64::new(0),
        started,
        save_id: random_u64(),
        save_started: Mutex::new(None),
        save_failed: Mutex::new(None),
        saved_items: AtomicU64::new(0),
    })
}

fn random_u64() -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(unix_ms())
}

/// Every file of the save at `file`, checked. Ok(None): there is no save.
fn find_save(file: &MemoryFile, config: &Config, clock: &Clock) -> Result<Option<Plan>, String> {
    let first = shard_path(file, 0);
    if !first.exists() {
        return Ok(None);
    }
    let read = |path: &Path| -> Result<Header, String> {
        let mut f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Header::read(&mut f).map_err(|e| format!("{}: {e}", path.display()))
    };
    let h0 = read(&first)?;
    let mut files = Vec::new();
    let mut headers = Vec::new();
    for core in 0..h0.cores as usize {
        let path = shard_path(file, core);
        if !path.exists() {
            return Err(format!("{} is missing: the previous shutdown did not finish saving", path.display()));
        }
        let h = read(&path)?;
        if h.save_id != h0.save_id || h.cores != h0.cores || h.core as usize != core {
            return Err(format!("{} belongs to another save", path.display()));
        }
        files.push(path);
        headers.push(h);
    }
    let here = machine_id();
    if h0.machine != 0 && here != 0 && h0.machine != here {
        return Err("saved on another machine (/etc/machine-id differs)".into());
    }
    if h0.item_layout != ITEM_LAYOUT {
        return Err("another item layout".into());
    }
    // Wall-clock time of the save on the old server clock, and on ours.
    let saved_unix = h0.saved_unix_ms.div_euclid(1000);
    let old_origin = saved_unix - h0.saved_now as i64;
    let delta = old_origin - clock.unix_at_zero();
    let now = clock.now();
    let pending = h0.pending_flush;
    let flushed_in_gap = pending > h0.saved_now && shift_exptime(pending, delta) <= now;
    let _ = config;
    Ok(Some(Plan {
        cas_high: headers.iter().map(|h| h.cas_high).max().unwrap_or(0),
        arenas: (0..files.len()).map(|c| arena_path(file, c)).collect(),
        files,
        headers,
        delta,
        flushed_in_gap,
    }))
}

/// Removes every file a save at `file` may have left: `<base>.<n>` and `.tmp`s, and
/// with `arenas` the arena files `<base>.<n>.arena` too.
fn remove_saves(file: &MemoryFile, arenas: bool) {
    let Some(dir) = file.base.parent().map(|d| if d.as_os_str().is_empty() { Path::new(".") } else { d }) else {
        return;
    };
    let Some(name) = file.base.file_name().map(|n| n.to_string_lossy().into_owned()) else { return };
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let entry_name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = entry_name.strip_prefix(&name).and_then(|r| r.strip_prefix('.')) else { continue };
        let rest = match rest.strip_suffix(".arena") {
            Some(_) if !arenas => continue,
            Some(r) => r,
            None => rest.strip_suffix(".tmp").unwrap_or(rest),
        };
        if !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// On each executor, before it serves: loads its part of the save (see the module
/// comment), then waits for every other core; all cores restored, or all empty.
pub fn load_on_core(core: &Core) {
    let Some(state) = core.shared.restart.as_ref() else { return };
    let Some(plan) = &state.plan else {
        // Nothing to load: a fresh (emptied) arena, if the directory allows one.
        let shard = &mut core.shard.borrow_mut();
        let slots = shard.arena_slots(0);
        let _ = attach_arena(&state.file, core.id, shard, slots, false);
        return;
    };
    let now = core.tick();
    let runtime = &core.shared.runtime;
    let h0 = &plan.headers[0];
    let direct = {
        let shard = core.shard.borrow();
        h0.cores as usize == core.shared.config.threads
            && h0.segment_size as usize == shard.segment_size()
            && core.shared.config.item_size_max as u64 >= h0.item_size_max
    };
    let result = if plan.flushed_in_gap {
        let shard = &mut core.shard.borrow_mut();
        if direct {
            let slots = shard.arena_slots(0);
            let _ = attach_arena(&state.file, core.id, shard, slots, false);
        }
        Ok(0)
    } else {
        let shard = &mut core.shard.borrow_mut();
        if direct {
            load_own_file(core, shard, plan, now)
        } else {
            // Segments stay on the heap for this process: every core still reads the
            // old arenas (the next save writes them out; the start after that maps).
            load_every_file(core, shard, plan, now)
        }
    };
    match result {
        Ok(items) => {
            state.items.fetch_add(items, Relaxed);
        }
        Err(why) => {
            state.load_failed.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(why);
        }
    }
    state.barrier.wait();
    let failed = state.load_failed.lock().unwrap_or_else(|e| e.into_inner()).clone();
    {
        let mut shard = core.shard.borrow_mut();
        if failed.is_some() {
            shard.clear();
        }
        // Evictions and expiries of the load itself are not the clients'.
        shard.reset_stats();
        shard.continue_cas_above(plan.cas_high);
    }
    core.publish();
    if core.id == 0 {
        let given = state.file.given.display();
        if let Some(why) = &failed {
            eprintln!("warm restart: not restoring {given}: {why}; starting empty");
            state.items.store(0, Relaxed);
        } else {
            // flush_all state: what `stats settings` shows, and a delayed flush still due.
            let shifted = |t: u32| if t == 0 { 0 } else { shift_exptime(t, plan.delta) };
            runtime.oldest_live.store(shifted(h0.oldest_live).min(now), Relaxed);
            if h0.pending_flush > h0.saved_now && !plan.flushed_in_gap {
                runtime.pending_flush.store(shifted(h0.pending_flush), Relaxed);
            }
            let secs = state.started.elapsed().as_secs_f64();
            state.restored.store(true, Relaxed);
            state.load_micros.store((secs * 1e6) as u64, Relaxed);
            let gap = unix_ms().saturating_sub(h0.saved_unix_ms) as f64 / 1000.0;
            let note = if plan.flushed_in_gap { " (a delayed flush_all came due during the restart)" } else { "" };
            eprintln!(
                "warm restart: restored {} items from {given} in {secs:.2} s, {gap:.1} s after the save{note}",
                state.items.load(Relaxed)
            );
        }
        // The arenas are this process's segments now, unless it re-sharded.
        remove_saves(&state.file, !direct);
    }
    // No core serves before every core's figures and the restore's are in place.
    state.barrier.wait();
}

/// The same core count and segment size: this core's own file, segment by segment.
fn load_own_file(core: &Core, shard: &mut Shard, plan: &Plan, now: u32) -> Result<u64, String> {
    let path = &plan.files[core.id];
    let named = |e: FileError| format!("{}: {e}", path.display());
    let mut r = Reader::open(path, &plan.arenas[core.id]).map_err(named)?;
    // Every chunk's description first (segments in the arena are not read here).
    let mut chunks = Vec::new();
    while let Some(c) = r.next_chunk().map_err(named)? {
        r.skip(&c).map_err(named)?;
        chunks.push(c);
    }
    // A smaller -m: skip the oldest segments, keeping the newest that fit.
    let mut skip = 0usize;
    if !shard.fits_segments(r.header.segments as usize, r.header.items as usize) {
        let (mut segs, mut items) = (0usize, 0usize);
        skip = chunks.len();
        for c in chunks.iter().rev() {
            if !shard.fits_segments(segs + 1, items + c.live_items as usize) {
                break;
            }
            segs += 1;
            items += c.live_items as usize;
            skip -= 1;
        }
    }
    r.rewind().map_err(named)?;
    // The arena: its slots stay as the previous process left them for the segments
    // kept here to take (the rest are given back once loaded).
    let top = chunks[skip..].iter().filter_map(|c| c.slot).max().map_or(0, |s| s as usize + 1);
    let slots = shard.arena_slots(top);
    let arena = attach_arena(&core.shared.restart.as_ref().expect("loading").file, core.id, shard, slots, true);
    if let Err(why) = &arena {
        if top > 0 {
            return Err(format!("{}: {why}", plan.arenas[core.id].display()));
        }
    }
    shard.reserve_items(r.header.items as usize);
    let flushed_below = r.header.flushed_below;
    let mut loaded = 0u64;
    let mut n = 0usize;
    let started_shift = |s: u32| shift_exptime(s, plan.delta).min(now);
    while let Some(chunk) = r.next_chunk().map_err(named)? {
        n += 1;
        if n <= skip {
            r.skip(&chunk).map_err(named)?;
            continue;
        }
        let reader = &mut r;
        let adopted = shard.adopt_segment(
            chunk.len as usize,
            chunk.slot,
            started_shift(chunk.started),
            plan.delta,
            now,
            flushed_below,
            |buf| match chunk.slot {
                Some(_) => restart_file::check(&chunk, buf),
                None => reader.read_into(&chunk, buf),
            },
            // Same core count and the save's route seeds: every key is this core's,
            // as it was (hashing each key again to check cost a tenth of the load).
            |_| true,
        );
        match adopted {
            Some(Ok(got)) => loaded += got.items,
            Some(Err(AdoptError::Fill(e))) => return Err(named(e)),
            Some(Err(AdoptError::Corrupt(c))) => {
                return Err(format!("{}: malformed record at offset {} of chunk {n}", path.display(), c.offset))
            }
            None => return Err("more segments than a shard can index".into()),
        }
    }
    shard.finish_adopting();
    shard.give_back_unused_slots();
    Ok(loaded)
}

/// Another core count or segment size: every file, oldest segments first (merged by
/// their start time), each item this core owns stored anew.
fn load_every_file(core: &Core, shard: &mut Shard, plan: &Plan, now: u32) -> Result<u64, String> {
    let mut readers: Vec<(&PathBuf, Reader, Option<restart_file::Chunk>)> = Vec::new();
    for (n, path) in plan.files.iter().enumerate() {
        let r = Reader::open(path, &plan.arenas[n]).map_err(|e| format!("{}: {e}", path.display()))?;
        readers.push((path, r, None));
    }
    let mut buf = Vec::new();
    let mut loaded = 0u64;
    loop {
        for (path, r, next) in readers.iter_mut() {
            if next.is_none() && !r.done {
                *next = r.next_chunk().map_err(|e| format!("{}: {e}", path.display()))?;
            }
        }
        // Oldest first: by start time (whole seconds), and within a second by how far
        // through its file the segment is, so that no file's newest segments come
        // before another's older ones.
        let position = |r: &Reader, c: &restart_file::Chunk| {
            (c.started, c.number as u64 * 1_000_000 / r.header.segments.max(1) as u64)
        };
        let Some((path, r, next)) = readers
            .iter_mut()
            .filter(|(_, _, next)| next.is_some())
            .min_by_key(|(_, r, next)| next.map(|c| position(r, &c)))
        else {
            break;
        };
        let chunk = next.take().expect("filtered on is_some");
        buf.resize(chunk.len as usize, 0);
        r.read_into(&chunk, &mut buf).map_err(|e| format!("{}: {e}", path.display()))?;
        for rec in saved_records(&buf) {
            let rec = rec.map_err(|c| format!("{}: malformed record at offset {}", path.display(), c.offset))?;
            // Dead, flushed (flush_all is lazy: what it covers may still be in the
            // segments), or another core's.
            if rec.dead || rec.cas < r.header.flushed_below || core.router.owner(rec.key) != core.id {
                continue;
            }
            let exptime = shift_exptime(rec.exptime, plan.delta);
            if shard.restore_item(&rec, exptime, now) {
                loaded += 1;
            }
        }
    }
    // Items evicted to make room for newer ones were counted as loaded.
    Ok(shard.stats().curr_items.min(loaded))
}

/// On each executor after the drain: writes its shard. Runs with the executor blocked,
/// so nothing changes the shard meanwhile.
pub fn save_on_core(core: &Core) {
    let Some(state) = core.shared.restart.as_ref() else { return };
    let started = *state.save_started.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert_with(Instant::now);
    let now = core.tick();
    let runtime = &core.shared.runtime;
    let mut shard = core.shard.borrow_mut();
    // A delayed flush already due is applied first, so the save holds what clients see.
    flush::apply_due(&mut shard, runtime, &core.flush_applied, now, core.shared.config.cas_enabled);
    let config = &core.shared.config;
    let stats = shard.stats();
    let segments: Vec<_> = shard.saved_segments().collect();
    let header = Header {
        item_layout: ITEM_LAYOUT,
        memory_limit: config.memory_limit as u64,
        item_size_max: config.item_size_max as u64,
        segment_size: shard.segment_size() as u64,
        cores: config.threads as u32,
        core: core.id as u32,
        save_id: state.save_id,
        machine: machine_id(),
        saved_unix_ms: unix_ms(),
        saved_now: core.shared.clock.now(),
        cas_high: shard.cas_high(),
        flushed_below: shard.flushed_below(),
        oldest_live: runtime.oldest_live.load(Relaxed),
        pending_flush: runtime.pending_flush.load(Relaxed),
        route_seeds: core.shared.route_seeds,
        segments: segments.len() as u32,
        items: stats.curr_items,
        bytes: segments.iter().map(|s| s.bytes.len() as u64).sum(),
    };
    let path = shard_path(&state.file, core.id);
    let tmp = tmp_path(&path);
    let written = (|| -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
        let chunks = segments.iter().map(|s| restart_file::SegmentOut {
            started: s.started,
            live_items: s.live_items,
            bytes: s.bytes,
            slot: s.slot,
        });
        restart_file::write(&mut f, &header, chunks, || started.elapsed() < state.file.save_timeout)?;
        f.sync_data()?;
        std::fs::rename(&tmp, &path)
    })();
    match written {
        Ok(()) => {
            state.saved_items.fetch_add(stats.curr_items, Relaxed);
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            let why = format!("{}: {e}", tmp.display());
            state.save_failed.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(why);
        }
    }
}

/// On the main thread once every executor has stopped: one line on what was saved, or
/// why nothing was (then no file of this save is left behind).
pub fn finish_save(state: &State, cores: usize) {
    let started = *state.save_started.lock().unwrap_or_else(|e| e.into_inner());
    let Some(started) = started else { return };
    let given = state.file.given.display();
    let failed = state.save_failed.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let complete = (0..cores).all(|c| shard_path(&state.file, c).exists());
    match failed {
        Some(why) => {
            remove_saves(&state.file, true);
            eprintln!("warm restart: cache not saved to {given}: {why}; the next start will be empty");
        }
        None if !complete => {
            remove_saves(&state.file, true);
            eprintln!("warm restart: cache not saved to {given}: a core did not save; the next start will be empty");
        }
        None => eprintln!(
            "warm restart: saved {} items to {given} in {:.2} s",
            state.saved_items.load(Relaxed),
            started.elapsed().as_secs_f64()
        ),
    }
}
