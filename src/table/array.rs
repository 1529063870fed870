//! `Array`: one shard's open-addressing slot array, probed by readers without a
//! lock and written by the shard's writer under its lock.
//!
//! A slot is one atomic word: a pointer to an entry (the value cell, which also
//! holds the key: `value/mod.rs`), carrying in its top 16 bits a *tag* of the key's hash
//! (see [`Word`]). The word is the slot's whole state:
//!
//! * null: never used, or freed again by a removal that left no probe sequence
//!   running through it (`Array::remove`); a probe stops here (the array is never
//!   full: see `Writer::array_for_one_more`);
//! * [`tombstone`]: its entry was removed where a later entry's probe runs through
//!   the slot (or might: `Array::remove`); a probe goes on past it, and an insert
//!   may reuse the slot;
//! * anything else: a live entry, with its tag.
//!
//! A reader compares a slot's tag with its key's before it reads the entry, so that
//! a probe past other keys' slots reads no entry (one word per slot, no second
//! cache line). Since nothing but the word is ever written, a removed entry's slot
//! can be reused without racing a reader that still holds the old word.
//!
//! Keys never live in an array, so a rehash moves only words into a new array
//! (recomputing each entry's hash from its key: the word keeps only the tag) and
//! retires this one, whose slots are then freed after an epoch grace period: no key
//! is ever copied, and freeing an array runs no user code.

use std::ops::Range;
use std::ptr::{self, NonNull};

use crate::mapped::{self, Commit};
use crate::prefetch::prefetch_line;
use crate::sync::{AtomicPtr, Ordering, TRACK_FREES, UnsafeCell, ZEROED_ATOMIC_PTR_IS_NULL};

/// How many slots after a removed one `Array::probed_through` looks at before it
/// takes the slot for probed through (a tombstone, as before displacements).
const RUN_SCAN: usize = 16;

/// How many slots ahead of the one it hands over `Array::each_live_fetched` (a
/// teardown's drain, a rehash) fetches an entry: at the load a fill leaves (1/4
/// to 1/2 live, `MAX_LIVE` in `mod.rs`), 16 to 32 entries ahead.
/// - 24 rather than 8 (2026-12-03): a fill of 1,000,000 entries (`--bench
///   fill_probe -- --readers 0`), alternating, took 90.0–101.3 ms against
///   98.6–119.6 with 8 (when arrays were at a load of 3/8 to 3/4).
/// - 64 rather than 24 (2026-12-05), once arrays were at most half live, where 24
///   slots are 6 to 12 entries: the teardown of 1,000,000 `u64` entries
///   (`--bench teardown_fairness`, `perf record -e cpu-clock` of 7 rounds, three
///   alternations) spent 793–822 samples of the reclaimer's in the drain's loop
///   against 897–914, and 1,171–1,212 against 1,280–1,329 in all. The fill did not
///   move (84.6–91.5 ms against 87.3–88.1; it fetches ahead for its rehashes only).
const FETCH_AHEAD: usize = 64;

/// The state of a removed entry's slot: never a valid pointer (every pointee is
/// aligned to more than 1, checked in `Array::new`), and never dereferenced.
pub(super) fn tombstone<T>() -> *mut T {
    ptr::without_provenance_mut(1)
}

/// A slot's word: an entry's address, with its key's tag in the top 16 bits when
/// the address leaves them clear, and then the lowest bit set to say so (entries
/// are aligned to at least 2, so an address never has it) and, in the bits above
/// it that the entry's alignment leaves clear (up to 3), its *displacement*: how
/// many slots past its home slot the entry lies, saturated (the largest value
/// means "at least that many"; a value cell, aligned to 8, has 2 such bits: 0, 1,
/// 2, or 3 and more). A removal reads the displacements of the entries after a
/// slot to tell whether any probe runs through it (`Array::remove`). On 64-bit targets
/// user-space addresses usually fit in 48 bits; an entry whose address does not
/// (a program that maps memory above on purpose, a platform that keeps a tag of its
/// own in the top byte, such as Android's heap on arm64) is stored as its plain
/// address, untagged, and read back unchanged. Untagged (tag 0) means a reader
/// compares the key. The tombstone (address 1) has the low bit but no tag: it reads
/// back as untagged address 1.
struct Word;

impl Word {
    #[cfg(target_pointer_width = "64")]
    const TAG_SHIFT: u32 = 48;

    /// The tag of `hash`: its bits 32 to 47 (the shard is chosen by at most its top
    /// 16, a slot index by its low 32 at most), never 0.
    #[inline(always)]
    fn tag(hash: u64) -> usize {
        if cfg!(target_pointer_width = "64") {
            ((hash >> 32) as u16 | 1) as usize
        } else {
            0
        }
    }

    /// The largest displacement a tagged word records for entries of type `T`:
    /// `2^bits - 1`, where `bits` is what `T`'s alignment leaves clear above the
    /// tag bit (at most 3); a word holding it means "this many or more".
    const fn max_displacement<T>() -> usize {
        let clear = align_of::<T>().trailing_zeros();
        let bits = if clear > 3 {
            3
        } else {
            clear.saturating_sub(1)
        };
        (1 << bits) - 1
    }

    /// The bits of a tagged word that hold the address (the tag, the tag bit and
    /// the displacement cleared).
    #[cfg(target_pointer_width = "64")]
    const fn address_bits<T>() -> usize {
        ((1 << Self::TAG_SHIFT) - 1) & !((Self::max_displacement::<T>() << 1) | 1)
    }

    /// The word for `pointer`, which lies `displacement` slots past its home,
    /// tagged with `tag` (never 0) if its address allows.
    #[inline(always)]
    fn pack<T>(pointer: NonNull<T>, tag: usize, displacement: usize) -> *mut T {
        debug_assert!(pointer.as_ptr().addr() & 1 == 0, "entries are aligned to 2");
        #[cfg(target_pointer_width = "64")]
        if pointer.as_ptr().addr() >> Self::TAG_SHIFT == 0 {
            debug_assert!(tag != 0 && tag >> 16 == 0);
            let recorded = displacement.min(Self::max_displacement::<T>());
            return pointer
                .as_ptr()
                .map_addr(|address| address | tag << Self::TAG_SHIFT | recorded << 1 | 1);
        }
        let _ = (tag, displacement);
        pointer.as_ptr()
    }

    /// The displacement a live word records for its entry: exact below
    /// `max_displacement`, "at least" at it; `None` for an untagged word, which
    /// records none.
    #[inline(always)]
    fn recorded_displacement<T>(word: *mut T) -> Option<usize> {
        #[cfg(target_pointer_width = "64")]
        if word.addr() & 1 != 0 && word.addr() >> Self::TAG_SHIFT != 0 {
            return Some((word.addr() >> 1) & Self::max_displacement::<T>());
        }
        let _ = word;
        None
    }

    /// A word's tag (0: untagged) and pointer (its provenance kept).
    #[inline(always)]
    fn unpack<T>(word: *mut T) -> (usize, *mut T) {
        #[cfg(target_pointer_width = "64")]
        {
            let tag = word.addr() >> Self::TAG_SHIFT;
            if word.addr() & 1 != 0 && tag != 0 {
                return (
                    tag,
                    word.map_addr(|address| address & Self::address_bits::<T>()),
                );
            }
        }
        (0, word)
    }

    /// The live entry a word points at, if any (neither never used nor removed).
    #[inline(always)]
    fn live<T>(word: *mut T) -> Option<NonNull<T>> {
        let (_, pointer) = Self::unpack(word);
        NonNull::new(pointer).filter(|p| p.as_ptr() != tombstone())
    }

    /// What a probe for a key of tag `want` makes of a slot's word. The same cases
    /// as `unpack` and `live`, tested in the order that makes the common one, a
    /// slot of another key (tagged, another tag), cheapest: its low bit, the
    /// tombstone, its tag (5 instructions, against 10 when the word was unpacked
    /// first; a probe visits 3 to 4 slots per write in the Exchange mix).
    #[inline(always)]
    fn see<T>(word: *mut T, want: usize) -> Seen<T> {
        if word.addr() & 1 != 0 {
            // The tombstone (address 1, no tag), or a tagged entry.
            if word == tombstone() {
                return Seen::Removed;
            }
            #[cfg(target_pointer_width = "64")]
            if word.addr() >> Self::TAG_SHIFT == want {
                let pointer = word.map_addr(|address| address & Self::address_bits::<T>());
                // SAFETY: a tagged word packs a non-null entry pointer (`pack`),
                // whose address bits are kept here.
                return Seen::Candidate(unsafe { NonNull::new_unchecked(pointer) });
            }
            let _ = want;
            return Seen::Other;
        }
        // Low bit clear: never used (null), or an untagged entry.
        match NonNull::new(word) {
            None => Seen::Unused,
            Some(entry) => Seen::Candidate(entry),
        }
    }
}

/// A slot's word as a probe sees it ([`Word::see`]).
enum Seen<T> {
    /// An entry whose key may be the one probed for: tagged with its tag, or
    /// untagged (compared by key).
    Candidate(NonNull<T>),
    /// An entry of another key (tagged with another tag).
    Other,
    /// A removed entry's slot.
    Removed,
    /// Never used, or freed: the probe ends here.
    Unused,
}

/// What a probe for a key found.
pub(super) enum Probe<T> {
    /// The key's live slot, and the entry in it (which stays there while the
    /// prober holds the shard's lock).
    Found(usize, NonNull<T>),
    /// The key is absent; where to insert it: the first removed slot of its probe
    /// sequence, or else the unused (null) slot that ended it.
    Vacant(usize),
}

pub(super) struct Array<T> {
    slots: Slots<T>,
    /// Under loom (`TRACK_FREES`), read by every probe and written by the free: a
    /// probe of a freed array (a missing grace period), or of one whose publication
    /// it is not ordered after, races a write that loom sees. Unused otherwise.
    freed: UnsafeCell<bool>,
}

impl<T> Array<T> {
    /// An array of `capacity` never-used slots (`capacity` a power of two), a large
    /// one's pages committed as `commit` says (`src/mapped.rs`).
    pub(super) fn new(capacity: usize, commit: Commit) -> Self {
        Self::with_slots(Slots::new(capacity, commit))
    }

    /// [`new`](Self::new), or `None` if the system refuses a mapped array's memory
    /// (an array under 64 KiB comes from the global allocator, whose failure
    /// aborts as `new`'s does).
    pub(super) fn try_new(capacity: usize, commit: Commit) -> Option<Self> {
        Slots::try_new(capacity, commit).map(Self::with_slots)
    }

    fn with_slots(slots: Slots<T>) -> Self {
        let capacity = slots.get().len();
        const {
            assert!(
                align_of::<T>() >= 2,
                "the tombstone's address must be no entry's"
            )
        };
        debug_assert!(capacity.is_power_of_two());
        let array = Array {
            slots,
            freed: UnsafeCell::new(false),
        };
        if TRACK_FREES {
            // SAFETY: the array is not shared yet. A write loom sees, so that a probe
            // not ordered after the array's publication races it.
            array.freed.with_mut(|f| unsafe { *f = false });
        }
        array
    }

    pub(super) fn capacity(&self) -> usize {
        self.slots.get().len()
    }

    /// The bytes of its slots: what freeing the array gives back.
    pub(super) fn slot_bytes(&self) -> usize {
        size_of_val(self.slots.get())
    }

    /// The address of slot `i`.
    #[cfg(all(test, not(feature = "loom")))]
    pub(super) fn slot_address(&self, i: usize) -> *const u8 {
        std::ptr::from_ref(&self.slots.get()[i]).cast()
    }

    /// The first slot's address and the mask of the slots' indices: where a probe
    /// of a hash starts (`probe`), for a writer's prefetch hint (`locks.rs`).
    pub(super) fn slots_hint(&self) -> (*const u8, usize) {
        let slots = self.slots.get();
        (slots.as_ptr().cast(), slots.len() - 1)
    }

    /// Slots not unused (live or tombstones): what the writer's count of used
    /// slots must equal.
    #[cfg(all(test, not(feature = "loom")))]
    pub(super) fn used_slots(&self) -> usize {
        self.slots
            .get()
            .iter()
            .filter(|slot| !slot.load(Ordering::Relaxed).is_null())
            .count()
    }

    /// Under loom, the read that a free of this array races (see `freed`).
    #[inline(always)]
    fn probed(&self) {
        if TRACK_FREES {
            // SAFETY: written only at creation (before publication) and by the free
            // (after the grace period); loom checks both orders.
            assert!(!self.freed.with(|f| unsafe { *f }), "probed a freed array");
        }
    }

    /// The live entry of hash `hash` that `is_key` accepts, if any: the read path.
    /// Runs without a lock, concurrently with the shard's writer. `is_key` is called
    /// only with live entries whose tag matches the hash's (or that are untagged).
    ///
    /// At most one lap of the array: since removals free slots (`remove`), unused
    /// slots can come and go while a reader probes, and a writer that kept freeing
    /// the slot behind a run's end while filling the one past it could keep the
    /// reader from ever meeting one. After a lap the key was absent at some moment
    /// of the lookup: a key present throughout lies less than a lap from its home,
    /// behind slots that stay used, so the lap found it.
    #[inline(always)]
    pub(super) fn get(&self, hash: u64, is_key: impl Fn(NonNull<T>) -> bool) -> Option<NonNull<T>> {
        self.probed();
        let want = Word::tag(hash);
        // The slice taken once: re-read after each Acquire load below, its address
        // and length were two more loads a slot.
        let slots = self.slots.get();
        let len = slots.len();
        let mask = len - 1;
        let mut i = hash as usize & mask;
        // `0..len`, not `0..=mask`: an inclusive range keeps an "exhausted" flag,
        // instructions on every slot of the probe.
        for _ in 0..len {
            // Acquire: pairs with the Release store that published the entry
            // (`occupy`, `replace`, or the array's own publication after a rehash,
            // which happens before this array was loaded): the entry written before
            // it is visible.
            let word = slots[i].load(Ordering::Acquire);
            match Word::see(word, want) {
                Seen::Candidate(entry) if is_key(entry) => return Some(entry),
                Seen::Unused => return None,
                Seen::Candidate(_) | Seen::Other | Seen::Removed => {}
            }
            i = (i + 1) & mask;
        }
        None
    }

    /// Where the key of hash `hash` that `is_key` accepts is, or where it would go:
    /// the writer's probe, under the shard's lock (so no slot of this array changes
    /// meanwhile).
    #[inline]
    pub(super) fn probe(&self, hash: u64, is_key: impl Fn(NonNull<T>) -> bool) -> Probe<T> {
        // A writer's probe of a freed array is a missing quiesce (`locks.rs`).
        self.probed();
        let want = Word::tag(hash);
        let mask = self.slots.get().len() - 1;
        let mut i = hash as usize & mask;
        let mut removed = None;
        loop {
            // Relaxed: the caller holds the shard's lock, under which every write to
            // this array is made; the lock orders them.
            let word = self.slots.get()[i].load(Ordering::Relaxed);
            match Word::see(word, want) {
                Seen::Candidate(entry) if is_key(entry) => return Probe::Found(i, entry),
                Seen::Unused => return Probe::Vacant(removed.unwrap_or(i)),
                Seen::Removed => {
                    removed.get_or_insert(i);
                }
                Seen::Candidate(_) | Seen::Other => {}
            }
            i = (i + 1) & mask;
        }
    }

    /// The first never-used slot of `hash`'s probe sequence: where a rehash puts an
    /// entry (keys are unique, so none needs comparing). On an array not yet
    /// published, which has no removed slots.
    fn first_unused(&self, hash: u64) -> usize {
        let mask = self.slots.get().len() - 1;
        let mut i = hash as usize & mask;
        // Relaxed: as in `probe`.
        while !self.slots.get()[i].load(Ordering::Relaxed).is_null() {
            i = (i + 1) & mask;
        }
        i
    }

    /// The word that maps slot `i` to `pointer`, an entry of hash `hash`: tagged,
    /// with its displacement from its home (`hash`'s slot).
    #[inline(always)]
    fn word(&self, i: usize, hash: u64, pointer: NonNull<T>) -> *mut T {
        let mask = self.slots.get().len() - 1;
        let displacement = i.wrapping_sub(hash as usize) & mask;
        Word::pack(pointer, Word::tag(hash), displacement)
    }

    /// Publishes slot `i` (never used, or removed: a `Probe::Vacant`) mapped to
    /// `pointer`, an entry of hash `hash`. Returns whether the slot was never used.
    /// Under the shard's lock, or on an array not yet published.
    pub(super) fn occupy(&self, i: usize, hash: u64, pointer: NonNull<T>) -> bool {
        let slot = &self.slots.get()[i];
        // Relaxed: under the lock (as in `probe`).
        let was = slot.load(Ordering::Relaxed);
        debug_assert!(was.is_null() || was == tombstone());
        // Release: publishes the entry (the value cell and its key, written before
        // the insert) to readers' Acquire loads in `get` and `next_live`.
        slot.store(self.word(i, hash, pointer), Ordering::Release);
        was.is_null()
    }

    /// Maps live slot `i` (a `Probe::Found`, whose entry the caller takes over) to
    /// `pointer` instead (an entry for an equal key, of hash `hash`). Under the
    /// shard's lock.
    pub(super) fn replace(&self, i: usize, hash: u64, pointer: NonNull<T>) {
        // Relaxed: under the lock (as in `probe`); a debug build's check only.
        debug_assert!(Word::live(self.slots.get()[i].load(Ordering::Relaxed)).is_some());
        // A store, not a swap: under the shard's lock this writer is the slot's
        // only one, and the probe that found the slot read the entry it replaces (a
        // swap is a locked instruction on x86: a tenth of an upsert's samples).
        // Release: publishes the new entry to readers' Acquire loads in `get` and
        // `next_live`.
        self.slots.get()[i].store(self.word(i, hash, pointer), Ordering::Release);
    }

    /// Marks live slot `i` (found by a probe or a walk under the same hold of the
    /// shard's lock; the caller takes its entry over) removed; returns how many
    /// slots became unused (null) again. Under the shard's lock. `hash_of` gives a
    /// live entry's hash back (it may be called for entries after slot `i`, see
    /// `probed_through`; a panic in it leaves the array as it was).
    ///
    /// A removed slot that no live entry's probe sequence runs through goes back to
    /// unused (null) instead of a tombstone, and so does every tombstone right
    /// before it: probes (an insert's runs to an unused slot, a lookup's of an
    /// absent key) then pass fewer tombstones. Whether a probe runs through the
    /// slot, `probed_through` tells from the words after it: each records how far
    /// its entry lies from its home ([`Word`]), up to "3 or more", past which the
    /// entry's hash tells. So a removal at the end of a run leaves no tombstone,
    /// and one inside a run leaves one only where a later entry of the run was
    /// displaced past the slot (or the run is longer than `RUN_SCAN`). Until
    /// 2026-12-02 every removal inside a run left one: in the Exchange mix at 1
    /// thread a shard of 2,048 slots then held about 360 tombstones beside 840
    /// entries, and a probe visited 4.03 slots on average; now 2.54
    /// (`docs/BENCHMARKS.md`, "History", "Displacements in the slot words"). (hashbrown's `erase` rests
    /// on a cruder form of the idea for its groups of 16: it marks a slot empty
    /// rather than deleted when the 16 slots before it and the 16 from it both
    /// include an empty one.)
    ///
    /// Why no key is cut off: a key in slot `j` was inserted after a probe that found
    /// every slot from its home to `j - 1` used, and a slot becomes null only while
    /// no live entry's probe runs through it (the entries of its own run are
    /// checked; an entry of a later run lies past an unused slot, so by the same
    /// rule none of its probe runs through this one; a tombstone right before the
    /// freed slot is passed only by probes that would also pass the freed slot), so
    /// none of them can while `j` holds the key; a reader probing for a key
    /// present throughout its probe therefore finds only used slots before it, as
    /// before. A lookup can no longer count on meeting an unused slot within a
    /// lap, though: `get` stops after one.
    pub(super) fn remove(&self, i: usize, hash_of: impl Fn(NonNull<T>) -> u64) -> usize {
        let slots = self.slots.get();
        let mask = slots.len() - 1;
        let slot = &slots[i];
        // Relaxed: under the lock (as in `probe`); a debug build's check only.
        debug_assert!(Word::live(slot.load(Ordering::Relaxed)).is_some());
        // A store, as in `replace`. Relaxed, for the tombstone and for null: neither publishes anything
        // (readers skip a tombstone and stop at null; an insert that reuses the
        // slot publishes its own entry with Release). A reader that still loads
        // the old word is served by it: the entry's own protocol keeps it alive
        // past the removal (`Store`), and a retained read that finds it unmapped
        // probes again, ordered by the unmapping's Release (`value/mod.rs`).
        if self.probed_through(i, hash_of) {
            slot.store(tombstone(), Ordering::Relaxed);
            return 0;
        }
        slot.store(ptr::null_mut(), Ordering::Relaxed);
        let mut freed = 1;
        // The tombstones right before it now end nothing either. The walk stops:
        // the array is never full, so a used slot or a null comes before it wraps.
        let mut j = i.wrapping_sub(1) & mask;
        // Relaxed, the load and the store: under the lock, and a null publishes
        // nothing, as above.
        while slots[j].load(Ordering::Relaxed) == tombstone() {
            slots[j].store(ptr::null_mut(), Ordering::Relaxed);
            freed += 1;
            j = j.wrapping_sub(1) & mask;
        }
        freed
    }

    /// Whether a probe for some live entry runs through slot `i`: whether an entry
    /// in the run of used slots after `i` lies past `i` from a home at or before
    /// it. From the words' displacements, and, where a word records "this many or
    /// more" for an entry further away than that, from the entry's hash
    /// (`hash_of`, which reads its key): in the Exchange mix 9% of removals
    /// (9,625 of 104,618 with the probe's fixed seed; `benches/tombstone_sim.py`:
    /// 8.6–8.9%). `true`, as before displacements, at an untagged word (which
    /// records none: every word on 32-bit targets) and when the run goes on past
    /// `RUN_SCAN` slots. Under the shard's lock.
    ///
    /// Entries of a later run (past an unused slot) need no look: a probe reaching
    /// them from a home at or before `i` would have run through that unused slot,
    /// which no probe of a live entry does (see `remove`).
    fn probed_through(&self, i: usize, hash_of: impl Fn(NonNull<T>) -> u64) -> bool {
        let slots = self.slots.get();
        let mask = slots.len() - 1;
        let max = Word::max_displacement::<T>();
        // An exclusive range: an inclusive one kept an "exhausted" flag, five more
        // instructions a slot.
        for distance in 1..RUN_SCAN + 1 {
            let j = (i + distance) & mask;
            // Relaxed: under the lock (as in `probe`).
            let word = slots[j].load(Ordering::Relaxed);
            if word.is_null() {
                return false;
            }
            if word == tombstone() {
                continue;
            }
            // A live word: its recorded displacement first, its entry (unpacked)
            // only when the entry's hash must tell.
            let displacement = match Word::recorded_displacement(word) {
                Some(exact) if exact < max => exact,
                // "`max` or more", and `max` already reaches slot `i`.
                Some(_) if distance <= max => return true,
                // "`max` or more", further away: the entry's hash tells.
                Some(_) => match Word::live(word) {
                    Some(entry) => j.wrapping_sub(hash_of(entry) as usize) & mask,
                    None => continue,
                },
                // Untagged (every word on 32-bit targets): a tombstone, as before
                // displacements, rather than a key hashed for every entry after.
                None => return true,
            };
            if displacement >= distance {
                return true;
            }
        }
        true
    }

    /// The first live entry at or after slot `from`: `(index, pointer)`. Lock-free
    /// (the words are loaded as in `get`), or under the shard's lock.
    pub(super) fn next_live(&self, from: usize) -> Option<(usize, NonNull<T>)> {
        self.probed();
        self.slots
            .get()
            .iter()
            .enumerate()
            .skip(from)
            // Acquire: as in `get`.
            .find_map(|(i, slot)| Some((i, Word::live(slot.load(Ordering::Acquire))?)))
    }

    /// The pointer in slot `i` now: live, or `None` (removed). Lock-free, as
    /// `next_live`. (A removed slot may since hold another key's entry.)
    pub(super) fn reload(&self, i: usize) -> Option<NonNull<T>> {
        self.probed();
        // Acquire: as in `get`.
        Word::live(self.slots.get()[i].load(Ordering::Acquire))
    }

    /// Moves every live entry into `into` (a new array, not yet published, with
    /// room for them all; `hash_of` gives an entry's hash back) and returns how
    /// many. Under the shard's lock.
    ///
    /// `hash_of` reads each entry's key, a line of its own (the word keeps 16 bits
    /// of the hash, not the slot's): taken in slot order they are random lines, and
    /// one miss at a time was most of a rehash (`perf annotate` of a fill of
    /// 1,000,000 entries: 77% of this function's samples on the key's load), so
    /// they are fetched ahead as in [`drain_range`](Self::drain_range).
    pub(super) fn move_live_into(
        &self,
        into: &Array<T>,
        hash_of: impl Fn(NonNull<T>) -> u64,
    ) -> usize {
        let mut moved = 0;
        // Relaxed loads (in `each_live_fetched`): under the shard's lock, so that
        // no other thread writes the slots.
        self.each_live_fetched(0..self.slots.get().len(), |_, entry| {
            let hash = hash_of(entry);
            into.occupy(into.first_unused(hash), hash, entry);
            moved += 1;
        });
        moved
    }

    /// Hands the live pointers of the slots in `range` to `f`: the end of an array
    /// no reader can reach (the caller owns it, and frees it after its last range).
    ///
    /// The entry `FETCH_AHEAD` slots on is fetched before `f` runs on this one: a
    /// teardown's `f` writes each entry's count, a line the inserting thread wrote
    /// last, and one such miss at a time was the whole cost of a teardown (`perf
    /// annotate` of the clear storm's reclaimer: 92% of `release_unreachable`'s
    /// samples on the count's `lock xadd`).
    /// `f` gets each slot's index with its pointer. With `fetch` false, nothing
    /// is fetched: for an `f` that does not touch the entry (a teardown that only
    /// collects the pointers, `reclaim/by_address.rs`), where the fetches would
    /// bring in a line per entry for nothing.
    pub(super) fn drain_range(
        &self,
        range: Range<usize>,
        fetch: bool,
        mut f: impl FnMut(usize, NonNull<T>),
    ) {
        if fetch {
            // Relaxed loads (in `each_live_fetched`): the array is the caller's alone.
            self.each_live_fetched(range, f);
            return;
        }
        let slots = self.slots.get();
        for i in range {
            // Relaxed: the array is the caller's alone.
            if let Some(entry) = Word::live(slots[i].load(Ordering::Relaxed)) {
                f(i, entry);
            }
        }
    }

    /// Hands the live pointers of the slots in `range` to `f` with their indices,
    /// having fetched the entry `FETCH_AHEAD` slots on before `f` runs on each.
    /// The slots are loaded Relaxed: only for a caller no other thread writes them
    /// for (under the shard's lock, or an array only the caller can reach).
    fn each_live_fetched(&self, range: Range<usize>, mut f: impl FnMut(usize, NonNull<T>)) {
        let slots = self.slots.get();
        // Relaxed: no other thread writes these slots (the contract above).
        let live = |i: usize| Word::live(slots[i].load(Ordering::Relaxed));
        for i in range.start..range.end.min(range.start + FETCH_AHEAD) {
            if let Some(entry) = live(i) {
                prefetch_line(entry.as_ptr().cast());
            }
        }
        for i in range {
            if let Some(ahead) = slots.get(i + FETCH_AHEAD) {
                // Relaxed: as `live`.
                if let Some(entry) = Word::live(ahead.load(Ordering::Relaxed)) {
                    prefetch_line(entry.as_ptr().cast());
                }
            }
            if let Some(entry) = live(i) {
                f(i, entry);
            }
        }
    }
}

impl<T> Drop for Array<T> {
    /// Under loom, marks the array freed with a write loom sees, so that a reader
    /// still probing it (a missing grace period) races that write, whatever the
    /// freed memory then holds. Nothing in production.
    fn drop(&mut self) {
        self.mark_freed();
    }
}

impl<T> Array<T> {
    /// Under loom, what a free does to the array as loom sees it (see `freed`).
    fn mark_freed(&self) {
        if TRACK_FREES {
            // SAFETY: called on an array no reader can reach any more (its grace
            // period, or its table's teardown, is over).
            self.freed.with_mut(|f| unsafe { *f = true });
        }
    }
}

/// An array's slots: from the allocator, or, when large, mapped zeroed
/// (`src/mapped.rs`: freed memory of large arrays then leaves the process at once
/// instead of fragmenting the allocator's heap).
struct Slots<T> {
    slots: NonNull<[AtomicPtr<T>]>,
    mapped: bool,
}

/// Arrays of at least this many bytes are mapped.
const MAPPED_BYTES: usize = 64 * 1024;

impl<T> Slots<T> {
    fn new(capacity: usize, commit: Commit) -> Self {
        Self::try_new(capacity, commit).unwrap_or_else(|| {
            let layout = std::alloc::Layout::array::<AtomicPtr<T>>(capacity);
            std::alloc::handle_alloc_error(layout.expect("a slot array that fits in memory"))
        })
    }

    /// [`new`](Self::new), or `None` if the system refuses a mapped array's
    /// memory. (A smaller array comes from the global allocator, whose failure
    /// aborts.)
    fn try_new(capacity: usize, commit: Commit) -> Option<Self> {
        let bytes = capacity
            .checked_mul(size_of::<AtomicPtr<T>>())
            .expect("a slot array that fits in memory");
        if ZEROED_ATOMIC_PTR_IS_NULL && bytes >= MAPPED_BYTES {
            let block = mapped::try_map_zeroed(bytes, align_of::<AtomicPtr<T>>(), commit)?;
            // Soundness: `capacity` pointer-sized, pointer-aligned slots of zeroed
            // memory, and an all-zero `AtomicPtr` is a null one (the shim's
            // `ZEROED_ATOMIC_PTR_IS_NULL`, checked above).
            let slots = NonNull::slice_from_raw_parts(block.cast::<AtomicPtr<T>>(), capacity);
            return Some(Slots {
                slots,
                mapped: true,
            });
        }
        let boxed: Box<[AtomicPtr<T>]> = (0..capacity)
            .map(|_| AtomicPtr::new(ptr::null_mut()))
            .collect();
        Some(Slots {
            slots: NonNull::from(Box::leak(boxed)),
            mapped: false,
        })
    }

    #[inline(always)]
    fn get(&self) -> &[AtomicPtr<T>] {
        // SAFETY: initialized slots (`new`), alive until `drop`, only shared.
        unsafe { self.slots.as_ref() }
    }
}

impl<T> Drop for Slots<T> {
    fn drop(&mut self) {
        if self.mapped {
            let bytes = self.slots.len() * size_of::<AtomicPtr<T>>();
            // SAFETY: mapped by `new` with these arguments; freed once, here.
            unsafe { mapped::unmap(self.slots.cast(), bytes, align_of::<AtomicPtr<T>>()) };
        } else {
            // SAFETY: leaked from a `Box` by `new`; taken back once, here.
            drop(unsafe { Box::from_raw(self.slots.as_ptr()) });
        }
    }
}

/// How many of the pages under `slots` are resident (`mincore`), and how many
/// pages they span: for the tests of what is committed when.
#[cfg(all(test, target_os = "linux", not(miri), not(feature = "loom")))]
fn resident_pages<T>(slots: &Slots<T>) -> (usize, usize) {
    assert!(slots.mapped, "a mapped array");
    let page = page_size();
    let bytes = size_of_val(slots.get());
    let mut residency = vec![0u8; bytes.div_ceil(page)];
    // SAFETY: `mincore` only reads the page tables of the range, which `slots`
    // maps (page-aligned: a fresh mapping), and writes one byte per page into
    // `residency`, which has one per page.
    let status = unsafe {
        libc::mincore(
            slots.slots.as_ptr().cast(),
            bytes,
            residency.as_mut_ptr().cast(),
        )
    };
    assert_eq!(status, 0, "mincore: {}", std::io::Error::last_os_error());
    let resident = residency.iter().filter(|&&r| r & 1 != 0).count();
    (resident, residency.len())
}

/// The system's page size.
#[cfg(all(test, target_os = "linux", not(miri), not(feature = "loom")))]
fn page_size() -> usize {
    // SAFETY: `sysconf` reads a system setting; no memory of ours is involved.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).expect("a page size")
}

#[cfg(all(test, target_os = "linux", not(miri), not(feature = "loom")))]
impl<T> Array<T> {
    /// [`resident_pages`] of the array's slots.
    pub(super) fn resident_pages(&self) -> (usize, usize) {
        resident_pages(&self.slots)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pointer at `address`, never dereferenced.
    fn at(address: usize) -> NonNull<u64> {
        NonNull::new(ptr::without_provenance_mut(address)).unwrap()
    }

    /// A rehash's new array is committed when it is made (`Commit::Now`), not
    /// faulted in through the zero page by the rehash's probes (`src/mapped.rs`);
    /// a block asked for `Commit::Lazily` is not.
    #[test]
    #[cfg(all(target_os = "linux", not(miri), not(feature = "loom")))]
    fn a_rehash_array_is_committed_when_made() {
        // 512 KiB of slots on a 64-bit target: mapped (`MAPPED_BYTES`).
        let capacity = 64 * 1024;
        let pages = (capacity * size_of::<AtomicPtr<u64>>()).div_ceil(page_size());
        let now = Slots::<u64>::new(capacity, Commit::Now);
        assert!(now.mapped);
        assert_eq!(
            resident_pages(&now),
            (pages, pages),
            "every page committed at once"
        );
        let lazily = Slots::<u64>::new(capacity, Commit::Lazily);
        assert!(lazily.mapped);
        assert_eq!(resident_pages(&lazily).0, 0, "no page before it is touched");
        lazily.get()[capacity / 2].store(at(64).as_ptr(), Ordering::Relaxed);
        assert_eq!(resident_pages(&lazily).0, 1, "the page a store touched");
        lazily.get()[capacity / 2].store(ptr::null_mut(), Ordering::Relaxed);
    }

    /// An ordinary heap address of the target (8-aligned, top bits clear).
    #[cfg(target_pointer_width = "64")]
    const ORDINARY: usize = 0x7f12_3456_7890;
    #[cfg(not(target_pointer_width = "64"))]
    const ORDINARY: usize = 0x1234_5670;

    #[test]
    fn words_read_back_what_was_packed() {
        let hash = 0x0123_4567_89ab_cdef_u64;
        let tag = Word::tag(hash);
        // An ordinary address: tagged on 64-bit targets, read back whole.
        let word = Word::pack(at(ORDINARY), tag, 2);
        assert_eq!(Word::unpack(word).1.addr(), ORDINARY);
        assert_eq!(Word::live(word), Some(at(ORDINARY)));
        if cfg!(target_pointer_width = "64") {
            assert_eq!(Word::unpack(word).0, tag);
            assert_ne!(tag, 0);
            // The displacement: exact below the largest value the alignment of a
            // `u64` (8: two bits) records, which means "at least" (3 for 9).
            assert_eq!(Word::max_displacement::<u64>(), 3);
            assert_eq!(Word::recorded_displacement(word), Some(2));
            for (displacement, recorded) in [(0, 0), (1, 1), (3, 3), (9, 3)] {
                let word = Word::pack(at(ORDINARY), tag, displacement);
                assert_eq!(Word::recorded_displacement(word), Some(recorded));
                assert_eq!(Word::live(word), Some(at(ORDINARY)));
            }
        }
        assert_eq!(Word::max_displacement::<u8>(), 0);
        assert_eq!(Word::max_displacement::<u16>(), 0);
        assert_eq!(Word::max_displacement::<u32>(), 1);
        #[repr(align(16))]
        struct Aligned16;
        assert_eq!(Word::max_displacement::<Aligned16>(), 7);
        // An address that uses the top bits (Android's tagged heap on arm64, for
        // one): stored untagged, read back unchanged, never taken for a tagged word.
        #[cfg(target_pointer_width = "64")]
        {
            let high = 0xb400_0071_2345_6780_usize;
            let word = Word::pack(at(high), tag, 1);
            assert_eq!(Word::unpack(word), (0, at(high).as_ptr()));
            assert_eq!(Word::live(word), Some(at(high)));
            assert_eq!(Word::recorded_displacement(word), None);
        }
        // The tombstone: untagged, and never live.
        assert_eq!(Word::unpack(tombstone::<u64>()).0, 0);
        assert_eq!(Word::live(tombstone::<u64>()), None);
        assert_eq!(Word::live(ptr::null_mut::<u64>()), None);
    }

    /// A probe's view of each kind of word matches what `unpack` and `live` say:
    /// an entry tagged with the probed tag or untagged is a candidate (its pointer
    /// whole), one tagged otherwise is skipped, and neither the tombstone nor null
    /// is ever taken for an entry.
    #[test]
    fn a_probe_sees_each_kind_of_word() {
        fn kind(seen: Seen<u64>) -> (&'static str, Option<NonNull<u64>>) {
            match seen {
                Seen::Candidate(entry) => ("candidate", Some(entry)),
                Seen::Other => ("other", None),
                Seen::Removed => ("removed", None),
                Seen::Unused => ("unused", None),
            }
        }
        let hash = 0x0123_4567_89ab_cdef_u64;
        let want = Word::tag(hash);
        let mine = Word::pack(at(ORDINARY), want, 1);
        assert_eq!(
            kind(Word::see(mine, want)),
            ("candidate", Some(at(ORDINARY)))
        );
        assert_eq!(kind(Word::see(tombstone::<u64>(), want)), ("removed", None));
        assert_eq!(
            kind(Word::see(ptr::null_mut::<u64>(), want)),
            ("unused", None)
        );
        #[cfg(target_pointer_width = "64")]
        {
            let other = Word::pack(at(ORDINARY), Word::tag(hash ^ (1 << 40)), 0);
            assert_eq!(kind(Word::see(other, want)), ("other", None));
            // Untagged (an address using the top bits): a candidate, compared by
            // key, even when its top bits equal the probed tag.
            let high = (want << Word::TAG_SHIFT) | 0x1234_5678;
            let word = Word::pack(at(high), want, 0);
            assert_eq!(kind(Word::see(word, want)), ("candidate", Some(at(high))));
        }
    }

    // Real atomics (under loom an array's slots exist only inside a model).
    #[cfg(not(feature = "loom"))]
    /// Slot `i`'s word is the tombstone (`Some(false)`), null (`Some(true)`), or
    /// live (`None`).
    fn unused(array: &Array<u64>, i: usize) -> Option<bool> {
        let word = array.slots.get()[i].load(Ordering::Relaxed);
        if word.is_null() {
            Some(true)
        } else if word == tombstone() {
            Some(false)
        } else {
            None
        }
    }

    /// A `hash_of` for the tests' entries: the hash (home) each address was
    /// inserted with, from `homes`; counts its calls in `calls`.
    #[cfg(not(feature = "loom"))]
    fn hash_from<'a>(
        homes: &'a [(usize, u64)],
        calls: &'a std::cell::Cell<usize>,
    ) -> impl Fn(NonNull<u64>) -> u64 + 'a {
        move |p| {
            calls.set(calls.get() + 1);
            let entry = homes.iter().find(|(address, _)| *address == p.addr().get());
            entry.expect("an entry of the test").1
        }
    }

    #[test]
    #[cfg(not(feature = "loom"))]
    fn a_removal_frees_the_slots_no_probe_runs_through() {
        // Eight slots; hash `h` starts its probe at slot `h % 8`.
        let array = Array::new(8, Commit::Lazily);
        let is = |address: usize| move |p: NonNull<u64>| p.addr().get() == address;
        let homes = [(0x20, 2), (0x30, 2), (0x40, 2), (0x70, 7), (0x80, 7)];
        let calls = std::cell::Cell::new(0);
        let hash = hash_from(&homes, &calls);
        // A run of three entries of home 2 in slots 2, 3, 4.
        for (slot, address) in [(2, 0x20), (3, 0x30), (4, 0x40)] {
            assert!(matches!(array.probe(2, is(address)), Probe::Vacant(i) if i == slot));
            assert!(array.occupy(slot, 2, at(address)));
        }
        // The middle one: a tombstone, since the entry in slot 4 is found through it.
        assert!(matches!(array.probe(2, is(0x30)), Probe::Found(3, p) if p == at(0x30)));
        assert_eq!(array.remove(3, &hash), 0);
        assert_eq!(unused(&array, 3), Some(false));
        assert_eq!(array.get(2, is(0x40)), Some(at(0x40)));
        assert!(matches!(array.probe(2, is(0x40)), Probe::Found(4, p) if p == at(0x40)));
        // The last one: slot 5 is unused, so slot 4 is freed, and the tombstone
        // before it with it; the entry in slot 2 stays.
        assert_eq!(array.remove(4, &hash), 2);
        assert_eq!(
            (unused(&array, 3), unused(&array, 4)),
            (Some(true), Some(true))
        );
        assert_eq!(array.get(2, is(0x20)), Some(at(0x20)));
        assert_eq!(array.get(2, is(0x40)), None);
        assert!(matches!(array.probe(2, is(0x20)), Probe::Found(2, p) if p == at(0x20)));
        assert_eq!(array.remove(2, &hash), 1);
        assert!((0..8).all(|i| unused(&array, i) == Some(true)));

        // Around the end: entries of home 7 in slots 7 and 0, slot 1 unused.
        assert!(array.occupy(7, 7, at(0x70)));
        assert!(array.occupy(0, 7, at(0x80)));
        assert!(matches!(array.probe(7, is(0x70)), Probe::Found(7, p) if p == at(0x70)));
        assert_eq!(array.remove(7, &hash), 0);
        assert_eq!(array.get(7, is(0x80)), Some(at(0x80)));
        assert!(matches!(array.probe(7, is(0x80)), Probe::Found(0, p) if p == at(0x80)));
        assert_eq!(array.remove(0, &hash), 2);
        assert!((0..8).all(|i| unused(&array, i) == Some(true)));
    }

    /// On 32-bit targets a word records no displacement (`probed_through`): a
    /// removal followed by a used slot leaves a tombstone, one at a run's end frees
    /// its slot and the tombstones before it, and the hash is never read.
    #[test]
    #[cfg(all(not(feature = "loom"), not(target_pointer_width = "64")))]
    fn a_removal_inside_a_run_leaves_a_tombstone_on_32_bit_targets() {
        let is = |address: usize| move |p: NonNull<u64>| p.addr().get() == address;
        let hash = |_: NonNull<u64>| -> u64 { panic!("no hash is read without tags") };
        let array = Array::new(16, Commit::Lazily);
        for slot in [2, 3, 4] {
            assert!(array.occupy(slot, slot as u64, at(0x100 * slot)));
        }
        assert_eq!(array.remove(3, hash), 0);
        assert_eq!(unused(&array, 3), Some(false));
        assert_eq!(array.get(2, is(0x400)), Some(at(0x400)));
        assert_eq!(
            array.remove(4, hash),
            2,
            "slot 4 and the tombstone before it"
        );
        assert_eq!(unused(&array, 3), Some(true));
        assert_eq!(array.remove(2, hash), 1);
        assert!((0..16).all(|i| unused(&array, i) == Some(true)));
    }

    #[test]
    // 64-bit targets: on others no word records a displacement (the test above).
    #[cfg(all(not(feature = "loom"), target_pointer_width = "64"))]
    fn a_removal_inside_a_run_frees_the_slot_only_if_no_probe_runs_through() {
        let is = |address: usize| move |p: NonNull<u64>| p.addr().get() == address;
        let homes = [
            (0x200, 2),
            (0x300, 3),
            (0x400, 4),
            (0x500, 4),
            (0x600, 5),
            (0x800, 8),
            (0x900, 9),
            (0xa00, 10),
            (0xb00, 11),
            (0xc00, 12),
            (0xd00, 8),
            (0x1000, 0),
            (0x1100, 1),
            (0x1200, 2),
            (0x1300, 3),
            (0x1400, 1),
        ];
        let calls = std::cell::Cell::new(0);
        let hash = hash_from(&homes, &calls);
        // Sixteen slots; entries at their homes 2, 3 and 4: a run, but no probe
        // runs through slot 3 (the entry after it is at home), so its removal
        // frees it, and a later one of slot 2 frees that too.
        let array = Array::new(16, Commit::Lazily);
        for slot in [2, 3, 4] {
            assert!(array.occupy(slot, slot as u64, at(0x100 * slot)));
        }
        assert_eq!(array.remove(3, &hash), 1);
        assert_eq!(unused(&array, 3), Some(true));
        assert_eq!(array.get(4, is(0x400)), Some(at(0x400)));
        assert_eq!(array.remove(2, &hash), 1);
        assert_eq!(array.get(4, is(0x400)), Some(at(0x400)));
        // Slot 5 holds an entry of home 4 and slot 6 one of home 5, each displaced
        // by 1. Removing slot 5 leaves a tombstone (slot 6's entry is found through
        // it); removing slot 4 then frees it: past the tombstone, slot 6's entry
        // lies 2 slots on but is displaced by 1 only, so it is not found through
        // slot 4.
        assert!(array.occupy(5, 4, at(0x500)));
        assert!(array.occupy(6, 5, at(0x600)));
        assert_eq!(array.remove(5, &hash), 0);
        assert_eq!(unused(&array, 5), Some(false));
        assert_eq!(array.get(5, is(0x600)), Some(at(0x600)));
        assert_eq!(array.remove(4, &hash), 1);
        assert_eq!(unused(&array, 4), Some(true));
        assert_eq!(array.get(5, is(0x600)), Some(at(0x600)));
        // Removing slot 6 frees it and the tombstone before it.
        assert_eq!(array.remove(6, &hash), 2);
        assert!((0..16).all(|i| unused(&array, i) == Some(true)));

        assert_eq!(calls.get(), 0, "every word so far told the displacement");

        // A displacement past what the word records (3 and more, for a `u64`):
        // slots 8 to 13 hold entries of homes 8, 9, 10, 11, 12 and 8 (the last one
        // 5 past its home, recorded as "3 or more"). Removing slot 9 leaves a
        // tombstone: slot 13's entry, 4 slots on, runs through it, which its word
        // cannot tell and its hash does (one call).
        for (slot, home) in [(8, 8), (9, 9), (10, 10), (11, 11), (12, 12), (13, 8)] {
            assert!(array.occupy(slot, home, at(0x100 * slot)));
        }
        assert_eq!(array.remove(9, &hash), 0);
        assert_eq!(unused(&array, 9), Some(false));
        assert_eq!(array.get(8, is(0xd00)), Some(at(0xd00)));
        // Once slot 13's entry is gone, slot 10's removal frees it and the tombstone
        // before it (slots 11 and 12 hold entries at their homes), and the rest stay.
        assert_eq!(array.remove(13, &hash), 1);
        assert_eq!(array.remove(10, &hash), 2);
        assert_eq!(
            (9..=13).map(|i| unused(&array, i)).collect::<Vec<_>>(),
            [Some(true), Some(true), None, None, Some(true)]
        );
        for slot in [8, 11, 12] {
            assert_eq!(
                array.get(slot as u64, is(0x100 * slot)),
                Some(at(0x100 * slot))
            );
        }
        assert_eq!(calls.get(), 1);

        // And one its hash says does not run through: slots 0 to 4 hold entries of
        // homes 0, 1, 2, 3 and 1 (the last one 3 past its home, recorded "3 or
        // more"); removing slot 0, 4 slots before it, frees the slot.
        for (slot, home) in [(0, 0), (1, 1), (2, 2), (3, 3), (4, 1)] {
            assert!(array.occupy(slot, home, at(0x1000 + 0x100 * slot)));
        }
        assert_eq!(array.remove(0, &hash), 1);
        assert_eq!(calls.get(), 2);
        assert_eq!(array.get(1, is(0x1400)), Some(at(0x1400)));
        // Slot 4's entry is 3 past its home, recorded "3 or more": that reaches
        // slot 3, 1 before it, with no hash; slot 3's removal keeps a tombstone.
        assert_eq!(array.remove(3, &hash), 0);
        assert_eq!(calls.get(), 2);
        // A tombstone is passed, not taken for the end of the run: slot 2's
        // removal looks past the one in slot 3 to slot 4 (2 slots on, displaced
        // by 3: a tombstone again, with no hash).
        assert_eq!(array.remove(2, &hash), 0);
        assert_eq!(unused(&array, 2), Some(false));
        assert_eq!(array.get(1, is(0x1400)), Some(at(0x1400)));
        assert_eq!(calls.get(), 2);
    }

    #[test]
    #[cfg(not(feature = "loom"))]
    fn a_lookup_stops_after_one_lap() {
        // No unused slot left (a state a reader can meet when removals free slots
        // behind it while inserts fill those ahead): a lookup of an absent key
        // ends after one lap, and a present key is still found from any home.
        let array = Array::new(8, Commit::Lazily);
        for slot in 0..8 {
            assert!(array.occupy(slot, 5, at(0x100 * (slot + 1))));
        }
        let is = |address: usize| move |p: NonNull<u64>| p.addr().get() == address;
        assert_eq!(array.get(5, is(0x42)), None);
        assert_eq!(array.get(5, is(0x500)), Some(at(0x500)));
        assert_eq!(array.get(6, is(0x500)), Some(at(0x500)));
    }
}
