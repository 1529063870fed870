// atomic-map for C++17: a header-only RAII layer over the C ABI (amap.h).
//
//   amap::Map               the map (untyped: void * data + destructor, as in C); move-only
//   amap::Value             a retained value; copy = retain, move = transfer, destroy = release
//   amap::Batch             the next contents of a Map, built off to the side; Map::replace publishes it
//   amap::Ticket            a retired generation: wait() for its teardown; move-only, owns the C ticket
//   amap::Reclaimer         a reclaimer of the program's own (Options::reclaimer), for maps with slow destructors
//   amap::ReadSection       a pinned read section: visit(key, f), and range-for over its entries
//   amap::Snapshot          a view of one generation, iterable with range-for
//   amap::TypedMap<T>       a Map whose values are T objects (new T, deleted exactly once)
//   amap::TypedValue<T>     a retained T: operator-> / operator*, no casts
//   amap::TypedReadSection<T>  a ReadSection over a TypedMap<T>: visit(key, f(const T &)), range-for
//   amap::TypedSnapshot<T>  a Snapshot of a TypedMap<T> (TypedMap::snapshot): get -> TypedValue<T>
//   amap::Error             thrown on failure, carries the amap_status_t and its text
//
// Ownership in C++ terms: a Value owns one reference and keeps the value (and the
// data it wraps) alive across clear_async(), replace(), remove() and the Map's
// destruction. Data pointers obtained from a ReadSection (visit, get_unchecked,
// range-for) are borrowed until the section ends.
//
// Without exceptions (-fno-exceptions, or AMAP_NO_EXCEPTIONS defined), an operation
// that would throw prints the status and aborts; the outcomes that are not errors
// (a missing key, a wait that timed out) are std::optional / bool in both modes.
// See docs/BINDINGS.md.
#ifndef AMAP_HPP
#define AMAP_HPP

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "amap.h"

#if !defined(AMAP_NO_EXCEPTIONS) && (defined(__cpp_exceptions) || defined(__EXCEPTIONS))
#define AMAP_HPP_EXCEPTIONS 1
#include <exception>
#include <stdexcept>
#else
#define AMAP_HPP_EXCEPTIONS 0
#endif

namespace amap {

#if AMAP_HPP_EXCEPTIONS
/// The one exception type: the status of the failed call and its description.
class Error : public std::runtime_error {
  public:
    explicit Error(amap_status_t status)
        : std::runtime_error(amap_status_str(static_cast<int32_t>(status))), status_(status) {}
    amap_status_t status() const noexcept { return status_; }

  private:
    amap_status_t status_;
};
#endif

namespace detail {
/// Throws (or, without exceptions, aborts) unless `status` is AMAP_OK.
inline void check(amap_status_t status) {
    if (status == AMAP_OK) return;
#if AMAP_HPP_EXCEPTIONS
    throw Error(status);
#else
    std::fprintf(stderr, "atomic-map: %s\n", amap_status_str(static_cast<int32_t>(status)));
    std::abort();
#endif
}

inline const uint8_t *bytes(std::string_view key) {
    return reinterpret_cast<const uint8_t *>(key.data());
}

/// Destructor trampoline for values owned by a std::unique_ptr<T>.
template <class T>
void delete_as(void *data, void * /*ctx*/) {
    delete static_cast<T *>(data);
}

/// Hands `value` to a C function that takes ownership on AMAP_OK (`give`), then
/// checks the status. On failure the unique_ptr keeps the object (and deletes it),
/// except after AMAP_PANIC, when the library may already have destroyed it: then it
/// is let go (a leak at worst, never a double delete).
template <class T, class Give>
void hand_over(std::unique_ptr<T> &value, Give give) {
    amap_status_t s = give(value.get());
    if (s == AMAP_OK || s == AMAP_PANIC) value.release();
    check(s);
}

/// Sole ownership of one C handle, given back with `Free` (which takes null) when
/// this is destroyed or assigned over. Move-only: what every move-only class below
/// holds instead of writing out its own moves and destructor.
template <class H, auto Free> class Owned {
  public:
    Owned() noexcept = default;
    explicit Owned(H *handle) noexcept : handle_(handle) {}
    Owned(const Owned &) = delete;
    Owned &operator=(const Owned &) = delete;
    Owned(Owned &&other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
    Owned &operator=(Owned &&other) noexcept {
        if (this != &other) {
            Free(handle_);
            handle_ = std::exchange(other.handle_, nullptr);
        }
        return *this;
    }
    ~Owned() { Free(handle_); }
    H *get() const noexcept { return handle_; }
    /// Where a C constructor writes the new handle (this must be empty).
    H **out() noexcept { return &handle_; }
    H *release() noexcept { return std::exchange(handle_, nullptr); }

  private:
    H *handle_ = nullptr;
};

/// `key` -> `data` through `c_insert` (amap_insert, amap_batch_insert), whose
/// target is `into`; `dtor(data, ctx)` runs exactly once.
template <class Into, class CInsert>
void insert(CInsert c_insert, Into *into, std::string_view key, void *data, amap_dtor_fn dtor, void *ctx) {
    check(c_insert(into, bytes(key), key.size(), data, dtor, ctx));
}

/// `key` -> an object that `into` then owns (deleted as a T, on any thread), as
/// `insert`, through `hand_over`.
template <class Into, class T, class CInsert>
void insert_owned(CInsert c_insert, Into *into, std::string_view key, std::unique_ptr<T> &value) {
    hand_over(value, [&](T *raw) { return c_insert(into, bytes(key), key.size(), raw, delete_as<T>, nullptr); });
}

/// A C++ callable handed to a C walk (`amap_read_for_each`, `amap_retain`) through
/// its `user` pointer. An exception the callable throws is caught (it must never
/// cross the C frames), kept, and rethrown by `rethrow` once the C call has
/// returned; from then on the callable is not called again.
template <class F> struct Callback {
    F &f;
#if AMAP_HPP_EXCEPTIONS
    std::exception_ptr error{};
#endif
    /// `f(args...)` as a bool, or `on_throw` if `f` throws now or has thrown before.
    template <class... A> bool call(bool on_throw, A &&...args) noexcept {
#if AMAP_HPP_EXCEPTIONS
        if (error) return on_throw;
        try {
            return static_cast<bool>(f(std::forward<A>(args)...));
        } catch (...) {
            error = std::current_exception();
            return on_throw;
        }
#else
        (void)on_throw;
        return static_cast<bool>(f(std::forward<A>(args)...));
#endif
    }
    void rethrow() const {
#if AMAP_HPP_EXCEPTIONS
        if (error) std::rethrow_exception(error);
#endif
    }
};

/// What every forward iterator here shares (CRTP): the standard member types, the
/// postfix ++ and !=; `Derived` provides *, the prefix ++ and ==.
template <class Derived, class E> class ForwardIterator {
  public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = E;
    using difference_type = std::ptrdiff_t;
    using pointer = const E *;
    using reference = E;

    Derived operator++(int) {
        Derived before = self();
        ++self();
        return before;
    }
    bool operator!=(const Derived &other) const { return !(self() == other); }

  private:
    Derived &self() { return static_cast<Derived &>(*this); }
    const Derived &self() const { return static_cast<const Derived &>(*this); }
};

template <class T> struct is_unique_ptr : std::false_type {};
template <class T, class D> struct is_unique_ptr<std::unique_ptr<T, D>> : std::true_type {};
template <class T> using plain_t = std::remove_cv_t<std::remove_reference_t<T>>;
/// A flush's timeout in the C ABI's milliseconds: a negative or overlong one
/// waits without limit (2^32 - 1 ms).
inline uint32_t flush_ms(std::chrono::milliseconds timeout) {
    auto ms = timeout.count();
    return ms < 0 || ms > static_cast<decltype(ms)>(UINT32_MAX) ? UINT32_MAX : static_cast<uint32_t>(ms);
}
/// A flush's answer: false for a timeout or a flush from the reclaimer's own
/// destructor; any other failure throws.
inline bool flushed(amap_status_t status) {
    if (status == AMAP_TIMED_OUT || status == AMAP_WOULD_DEADLOCK) return false;
    check(status);
    return true;
}
} // namespace detail

/// A retained value: holds one reference. Copying retains, moving transfers,
/// destruction releases. Never empty except after being moved from.
class Value {
  public:
    /// Takes over the reference `value` carries (from amap_get and friends).
    explicit Value(amap_value_t *value) noexcept : value_(value) {}
    Value(const Value &other) : value_(other.value_) {
        if (value_) detail::check(amap_value_retain(value_));
    }
    Value(Value &&other) noexcept : value_(std::exchange(other.value_, nullptr)) {}
    Value &operator=(Value other) noexcept {
        std::swap(value_, other.value_);
        return *this;
    }
    ~Value() { amap_value_release(value_); }

    /// The data pointer given to insert(); valid while this Value lives.
    void *data() const noexcept { return amap_value_data(value_); }
    /// data() as a T* (the type the value was inserted as).
    template <class T> T *as() const noexcept { return static_cast<T *>(data()); }
    explicit operator bool() const noexcept { return value_ != nullptr; }
    /// The C handle, still owned by this Value.
    const amap_value_t *get() const noexcept { return value_; }

  private:
    amap_value_t *value_;
};

/// Generation and garbage counters (see amap_stats_t).
using Stats = amap_stats_t;

/// A ticket for a generation retired by Map::clear_async or Map::replace: tells
/// whether, and waits until, it has been torn down. Move-only; the destructor frees
/// the C ticket (the generation is torn down all the same). It does not hold the
/// generation and may outlive the Map. A moved-from Ticket is empty (id() 0,
/// is_reclaimed() and wait() throw AMAP_NULL_ARGUMENT).
class Ticket {
  public:
    /// Takes over `ticket` (from amap_clear_async or amap_replace).
    explicit Ticket(amap_ticket_t *ticket) noexcept : ticket_(ticket) {}

    /// Whether the generation was torn down within `timeout` (negative: no limit).
    /// From a value's destructor run by the same reclaimer, in a read section
    /// whose pin holds the teardown up (one begun before the clear), or in a
    /// callback that the ticket's own map runs under its shard lock (retain's
    /// `keep`, upsert's `f`), it returns `false` at once (`AMAP_WOULD_DEADLOCK`).
    bool wait(std::chrono::milliseconds timeout = std::chrono::milliseconds(-1)) const {
        amap_status_t s = amap_ticket_wait(ticket_.get(), static_cast<int64_t>(timeout.count()));
        if (s == AMAP_TIMED_OUT || s == AMAP_WOULD_DEADLOCK) return false;
        detail::check(s);
        return true;
    }
    /// Whether the generation has been torn down (never blocks).
    bool is_reclaimed() const {
        uint8_t reclaimed = 0;
        detail::check(amap_ticket_is_reclaimed(ticket_.get(), &reclaimed));
        return reclaimed != 0;
    }
    /// Id of the retired generation.
    uint64_t id() const {
        uint64_t id = 0;
        if (ticket_.get()) detail::check(amap_ticket_id(ticket_.get(), &id));
        return id;
    }
    /// Calls `f()` once the generation has been torn down, with no thread waiting
    /// for it (amap_ticket_on_reclaimed): at once, on this thread, if it already
    /// is; otherwise on the thread that tears it down, right after (the
    /// reclaimer's, or in manual mode the one whose reclaim() or wait() does).
    /// The registration outlives this Ticket; each call adds one. `f` (moved into
    /// the heap until it runs, and destroyed right after, on that thread) runs
    /// where destructors run: keep it short. It must not throw: an exception
    /// there calls std::terminate. Never called, nor destroyed, if the generation
    /// is never torn down. Do not register while holding a lock `f` takes (it may
    /// run inside this call), nor block on what `f` signals where wait() would
    /// return false at once (see amap_ticket_on_reclaimed). An empty Ticket
    /// throws AMAP_NULL_ARGUMENT.
    template <class F> void on_reclaimed(F &&f) const {
        using Call = std::decay_t<F>;
        auto call = std::make_unique<Call>(std::forward<F>(f));
        detail::check(amap_ticket_on_reclaimed(ticket_.get(), &OnReclaimed<Call>::run, call.get()));
        call.release(); // the registration's now: freed by `run`
    }
    explicit operator bool() const noexcept { return ticket_.get() != nullptr; }
    /// The C handle, still owned by this Ticket.
    const amap_ticket_t *get() const noexcept { return ticket_.get(); }

  private:
    /// on_reclaimed's trampoline: runs the callable once and deletes it.
    template <class F> struct OnReclaimed {
        static void run(void *user) noexcept {
            std::unique_ptr<F> f(static_cast<F *>(user));
            std::move(*f)(); // once: a callable may be &&-qualified
        }
    };

    detail::Owned<amap_ticket_t, amap_ticket_free> ticket_;
};

class Map;
class ReadSection;
class Snapshot;

/// The next contents of one Map, invisible to readers until Map::replace publishes
/// them all at once. Move-only; a Batch destroyed unpublished destroys its values
/// (on this thread). Not thread-safe: one thread at a time.
class Batch {
  public:
    inline explicit Batch(const Map &map);

    /// Adds `key` -> `data`; `dtor(data, ctx)` runs exactly once (as Map::insert).
    void insert(std::string_view key, void *data, amap_dtor_fn dtor, void *ctx = nullptr) {
        detail::insert(amap_batch_insert, batch_.get(), key, data, dtor, ctx);
    }
    /// Adds `key` -> an object the batch now owns (deleted as a T, on any thread).
    template <class T> void insert(std::string_view key, std::unique_ptr<T> value) {
        detail::insert_owned(amap_batch_insert, batch_.get(), key, value);
    }
    /// Entries added so far (a key added twice counts twice; the later one wins).
    size_t size() const {
        size_t n = 0;
        detail::check(amap_batch_len(batch_.get(), &n));
        return n;
    }
    /// Gives the C batch up (for amap_replace, which consumes it).
    amap_batch_t *release() noexcept { return batch_.release(); }

  private:
    detail::Owned<amap_batch_t, amap_batch_free> batch_;
};

/// A reclaimer of the program's own, for maps whose destructors are slow: given to
/// them through Options::reclaimer (amap_new_with_reclaimer), it tears their
/// generations down and runs their destructors (on a thread of its own, or, manual,
/// on the threads that call reclaim() or flush()), so that they never delay other
/// maps, nor others them.
/// Move-only; destroying it frees the handle (amap_reclaimer_free: a manual
/// reclaimer whose maps are all gone runs its last passes there); its maps keep
/// the reclaimer itself alive.
class Reclaimer {
  public:
    /// AMAP_RECLAIM_BACKGROUND (a thread of its own) or AMAP_RECLAIM_MANUAL.
    explicit Reclaimer(uint32_t mode = AMAP_RECLAIM_BACKGROUND) {
        detail::check(amap_reclaimer_new(mode, reclaimer_.out()));
    }
    /// Runs one pass on this thread for every map of this reclaimer; returns the
    /// generations torn down (a generation that another thread's pin held past its
    /// grace period is left to a later call: call it periodically).
    size_t reclaim() {
        size_t n = 0;
        detail::check(amap_reclaimer_reclaim(reclaimer_.get(), &n));
        return n;
    }
    /// Destroys everything released to this reclaimer; false if `timeout` passed
    /// first (negative: no limit, as for Ticket::wait; in fact 2^32 - 1 ms) or when
    /// called from a destructor this reclaimer runs.
    bool flush(std::chrono::milliseconds timeout = std::chrono::milliseconds(-1)) {
        return detail::flushed(amap_reclaimer_flush(reclaimer_.get(), detail::flush_ms(timeout)));
    }
    /// The C handle, still owned by this Reclaimer.
    const amap_reclaimer_t *get() const noexcept { return reclaimer_.get(); }

  private:
    detail::Owned<amap_reclaimer_t, amap_reclaimer_free> reclaimer_;
};

/// Options for Map; the defaults are the C defaults.
struct Options {
    uint32_t reclaim_mode = AMAP_RECLAIM_BACKGROUND;
    size_t shards = 0;
    bool trim_memory = true;
    /// Let threads that release the map's values run their destructors, a batch
    /// at a time (amap_options_t.destructors_on_releasing_threads: faster frees of
    /// heap values; a destructor must then take no lock a releasing thread holds).
    bool destructors_on_releasing_threads = false;
    /// A reclaimer for the map instead of the one reclaim_mode names (nullptr: none).
    /// Only read while the Map is built; the map keeps the reclaimer alive.
    const Reclaimer *reclaimer = nullptr;
    /// Room for this many entries in the first generation (amap_reserve right
    /// after the map is made; 0: none). The constructor throws amap::Error (or,
    /// without exceptions, aborts) for room that cannot be had.
    size_t capacity = 0;
    /// The keys' hash function (amap_options_t.hasher): AMAP_HASHER_FAST, or
    /// AMAP_HASHER_SIPHASH for keys an attacker may choose while watching the
    /// program. Another value makes the constructor throw AMAP_INVALID_ARGUMENT (or,
    /// without exceptions, abort).
    uint8_t hasher = AMAP_HASHER_FAST;
};

/// A map from byte-string keys to values. Move-only; the destructor frees the map
/// (values still held by Values, Snapshots or ReadSections survive it).
class Map {
  public:
    Map() : Map(Options{}) {}
    explicit Map(const Options &options) {
        amap_options_t o;
        detail::check(amap_options_init(&o));
        o.reclaim_mode = options.reclaim_mode;
        o.shards = options.shards;
        o.trim_memory = options.trim_memory ? 1 : 0;
        o.destructors_on_releasing_threads = options.destructors_on_releasing_threads ? 1 : 0;
        o.hasher = options.hasher;
        if (options.reclaimer)
            detail::check(amap_new_with_reclaimer(&o, options.reclaimer->get(), map_.out()));
        else
            detail::check(amap_new_with(&o, map_.out()));
        // map_ owns the map already: a throw here frees it.
        if (options.capacity != 0) detail::check(amap_reserve(map_.get(), options.capacity));
    }

    /// Maps `key` to `data`; `dtor(data, ctx)` runs exactly once, on any thread,
    /// after the last holder lets go.
    void insert(std::string_view key, void *data, amap_dtor_fn dtor, void *ctx = nullptr) {
        detail::insert(amap_insert, map_.get(), key, data, dtor, ctx);
    }
    /// Maps `key` to an object the map now owns (deleted as a T, on any thread).
    template <class T> void insert(std::string_view key, std::unique_ptr<T> value) {
        detail::insert_owned(amap_insert, map_.get(), key, value);
    }
    /// Maps `key` to `data` only if the key is absent (one step: no other writer of
    /// the key comes between the look and the insert). Returns the value now mapped
    /// (the new one, or the one already there) and whether it was inserted. If it
    /// was not, the map took nothing and `dtor` will never be called for `data`.
    std::pair<Value, bool> try_insert(std::string_view key, void *data, amap_dtor_fn dtor, void *ctx = nullptr) {
        amap_value_t *v = nullptr;
        amap_status_t s = amap_try_insert(map_.get(), detail::bytes(key), key.size(), data, dtor, ctx, &v);
        if (s != AMAP_EXISTS) detail::check(s);
        return {Value(v), s == AMAP_OK};
    }
    /// Maps `key` to an object the map then owns, only if the key is absent, as
    /// above. If it was not inserted, `value` still owns the object.
    template <class T> std::pair<Value, bool> try_insert(std::string_view key, std::unique_ptr<T> &value) {
        amap_value_t *v = nullptr;
        amap_status_t s = amap_try_insert(map_.get(), detail::bytes(key), key.size(), value.get(),
                                          detail::delete_as<T>, nullptr, &v);
        // After AMAP_PANIC the library may have destroyed it: let it go (see hand_over).
        if (s == AMAP_OK || s == AMAP_PANIC) value.release();
        if (s != AMAP_EXISTS) detail::check(s);
        return {Value(v), s == AMAP_OK};
    }
    /// Maps `key` to `data` as insert() does, and returns the value it replaced
    /// (retained: its destructor waits for this Value too), or nullopt if the key
    /// was absent (amap_swap: one step, so no other writer's value is reported).
    /// Named as std::exchange, not swap: `a.swap(b)` swaps two objects in C++.
    std::optional<Value> exchange(std::string_view key, void *data, amap_dtor_fn dtor, void *ctx = nullptr) {
        amap_value_t *previous = nullptr;
        detail::check(amap_swap(map_.get(), detail::bytes(key), key.size(), data, dtor, ctx, &previous));
        if (!previous) return std::nullopt;
        return Value(previous);
    }
    /// Maps `key` to an object the map now owns, as above.
    template <class T> std::optional<Value> exchange(std::string_view key, std::unique_ptr<T> value) {
        amap_value_t *previous = nullptr;
        detail::hand_over(value, [&](T *raw) {
            return amap_swap(map_.get(), detail::bytes(key), key.size(), raw, detail::delete_as<T>, nullptr,
                             &previous);
        });
        if (!previous) return std::nullopt;
        return Value(previous);
    }
    /// Removes `key`; returns whether it was there.
    bool remove(std::string_view key) {
        amap_status_t s = amap_remove(map_.get(), detail::bytes(key), key.size());
        if (s == AMAP_NOT_FOUND) return false;
        detail::check(s);
        return true;
    }
    /// Removes `key` and returns the value the removal took out (retained), or
    /// nullopt if the key was absent.
    std::optional<Value> take(std::string_view key) {
        amap_value_t *v = nullptr;
        amap_status_t s = amap_take(map_.get(), detail::bytes(key), key.size(), &v);
        if (s == AMAP_NOT_FOUND) return std::nullopt;
        detail::check(s);
        return Value(v);
    }
    /// Removes `key` only if it still maps to the value `expected` holds (by
    /// identity), in one step; returns whether it did. A newer value inserted
    /// meanwhile stays.
    bool remove_if_same(std::string_view key, const Value &expected) {
        amap_status_t s = amap_remove_if_same(map_.get(), detail::bytes(key), key.size(), expected.get());
        if (s == AMAP_NOT_FOUND) return false;
        detail::check(s);
        return true;
    }
    /// Keeps only the entries for which `keep(key, data)` returns true, and returns
    /// how many it removed (amap_retain: eviction, one shard at a time under that
    /// shard's write lock, so `keep` must not write to this map, nor wait for its
    /// reclamation; reads are fine: the header's amap_retain says it all).
    /// Removed values are released as by remove(): holders keep them. An exception
    /// thrown by `keep` keeps that entry and every one after it, and is rethrown here.
    template <class F> size_t retain(F &&keep) {
        detail::Callback<F> callback{keep};
        size_t removed = 0;
        amap_status_t s = amap_retain(map_.get(), &keep_call<F>, &callback, &removed);
        callback.rethrow(); // the predicate's exception first: it explains the rest
        detail::check(s);
        return removed;
    }
    /// A retained value, or nullopt.
    std::optional<Value> get(std::string_view key) const {
        amap_value_t *v = nullptr;
        amap_status_t s = amap_get(map_.get(), detail::bytes(key), key.size(), &v);
        if (s == AMAP_NOT_FOUND) return std::nullopt;
        detail::check(s);
        return Value(v);
    }
    /// Calls `f(data)` with the borrowed data for `key` and returns true, or
    /// returns false without calling it (amap_get_with: one call, no allocation,
    /// no reference count touched). `data` is valid for the call only: keep a
    /// Value from get() to hold it longer. `f` may read and write the map, but not
    /// wait for reclamation (flush(), a Ticket's wait: they would time out, or
    /// never return without a limit). An exception thrown by `f` is rethrown here
    /// (it never crosses the C frames).
    template <class F> bool visit(std::string_view key, F &&f) const {
        auto body = [&f](const void *data) {
            f(data);
            return true;
        };
        detail::Callback<decltype(body)> callback{body};
        amap_status_t s =
            amap_get_with(map_.get(), detail::bytes(key), key.size(), &visit_call<decltype(body)>, &callback);
        callback.rethrow(); // the callback's exception first: it explains the rest
        if (s == AMAP_NOT_FOUND) return false;
        detail::check(s);
        return true;
    }
    bool contains(std::string_view key) const {
        uint8_t present = 0;
        detail::check(amap_contains(map_.get(), detail::bytes(key), key.size(), &present));
        return present != 0;
    }
    /// Destroys everything this map released before the call (removed, replaced
    /// and cleared values) on its reclaimer (amap_flush); false if `timeout` passed
    /// first (a read section or snapshot held elsewhere keeps a grace period open;
    /// negative: no limit) or when called from a destructor that reclaimer runs.
    /// Call it before exit when destructors have effects outside the process.
    bool flush(std::chrono::milliseconds timeout = std::chrono::milliseconds(-1)) const {
        return detail::flushed(amap_flush(map_.get(), detail::flush_ms(timeout)));
    }
    size_t size() const {
        size_t n = 0;
        detail::check(amap_len(map_.get(), &n));
        return n;
    }
    /// How many entries the current generation holds before its table grows
    /// (amap_capacity): 0 for a new map, and after a clear.
    size_t capacity() const {
        size_t n = 0;
        detail::check(amap_capacity(map_.get(), &n));
        return n;
    }
    /// Makes room for `additional` more entries in the current generation, so that
    /// inserting them rehashes no shard (amap_reserve); throws amap::Error
    /// (AMAP_INVALID_ARGUMENT for room past PTRDIFF_MAX bytes, the map unchanged;
    /// AMAP_NO_MEMORY if the system refused a shard's array) or, built without
    /// exceptions, aborts: try_reserve returns false instead. Not from a compute
    /// or retain callback on this map.
    void reserve(size_t additional) { detail::check(amap_reserve(map_.get(), additional)); }
    /// reserve, or false for room that cannot be had (AMAP_INVALID_ARGUMENT or
    /// AMAP_NO_MEMORY); other errors throw (or abort) as reserve's.
    [[nodiscard]] bool try_reserve(size_t additional) {
        amap_status_t s = amap_reserve(map_.get(), additional);
        if (s == AMAP_INVALID_ARGUMENT || s == AMAP_NO_MEMORY) return false;
        detail::check(s);
        return true;
    }
    /// Moves each shard of the current generation to the smallest array that holds
    /// its entries (amap_shrink_to_fit). Not from a compute or retain callback on
    /// this map.
    void shrink_to_fit() { detail::check(amap_shrink_to_fit(map_.get())); }
    /// O(1) clear; returns a Ticket for the retired generation (ignore it if you
    /// do not need it: it is freed at once).
    Ticket clear_async() {
        amap_ticket_t *ticket = nullptr;
        detail::check(amap_clear_async(map_.get(), &ticket));
        return Ticket(ticket);
    }
    /// Publishes `batch` (made for this map) as the whole contents, with one swap:
    /// readers see the old contents or the new, never a mix or an empty map. The
    /// batch is consumed whatever happens.
    Ticket replace(Batch &&batch) {
        Batch taken = std::move(batch);
        amap_ticket_t *ticket = nullptr;
        detail::check(amap_replace(map_.get(), taken.release(), &ticket));
        return Ticket(ticket);
    }
    /// Publishes a range of (key, std::unique_ptr<T>) pairs as the whole contents,
    /// with one swap (the pointers are moved from; a later duplicate key wins).
    template <class Range> Ticket replace(Range &&entries) {
        Batch batch(*this);
        for (auto &&entry : entries) {
            auto &&[key, value] = entry;
            static_assert(detail::is_unique_ptr<detail::plain_t<decltype(value)>>::value,
                          "Map::replace takes (key, std::unique_ptr<T>) pairs; TypedMap<T>::replace takes values");
            batch.insert(key, std::move(value));
        }
        return replace(std::move(batch));
    }
    /// Manual mode: tears retired generations down on this thread (one that
    /// another thread's pin held past its grace period is left to a later call).
    size_t reclaim() {
        size_t n = 0;
        detail::check(amap_reclaim(map_.get(), &n));
        return n;
    }
    Stats stats() const {
        Stats s{};
        detail::check(amap_stats(map_.get(), &s));
        return s;
    }
    inline Snapshot snapshot() const;
    /// The C handle, still owned by this Map.
    const amap_t *get() const noexcept { return map_.get(); }

  private:
    // Called from C: never throws (an exception is kept for `visit` to rethrow).
    template <class B> static void visit_call(void *data, void *user) noexcept {
        static_cast<detail::Callback<B> *>(user)->call(false, static_cast<const void *>(data));
    }
    // Called from C: never throws (an exception keeps the rest: `retain`).
    template <class F> static int32_t keep_call(const uint8_t *key, size_t len, void *data, void *user) noexcept {
        std::string_view k(reinterpret_cast<const char *>(key), len);
        return static_cast<detail::Callback<F> *>(user)->call(true, k, static_cast<const void *>(data)) ? 1 : 0;
    }

    detail::Owned<amap_t, amap_free> map_;
};

/// A pinned read section: borrowed reads without reference counting. It belongs
/// to the thread that created it and cannot be copied, moved or heap-allocated, so
/// it lives in one scope of one thread. Borrowed data is handed to a callback
/// (`visit`) and cannot escape it by construction; `get_unchecked` and range-for are
/// the escape hatches, valid until the section ends.
///
/// Range-for walks every entry of the section's generation (amap_read_for_each):
///
///     amap::ReadSection read(map);
///     for (const amap::ReadSection::Entry &e : read) use(e.key, e.as<Config>());
///
/// The entries are collected when the loop begins (keys copied into the section,
/// data pointers borrowed, no lock held and no count touched), so the loop body
/// may call into the map, and loops may nest. Keys and data stay valid until the
/// section ends.
class ReadSection {
  public:
    /// One entry of the section's generation.
    struct Entry {
        std::string_view key;
        const void *data;
        /// data as a const T* (the type the value was inserted as).
        template <class T> const T *as() const noexcept { return static_cast<const T *>(data); }
    };

    /// Forward iterator over the entries collected by begin().
    class iterator : public detail::ForwardIterator<iterator, Entry> {
      public:
        iterator() = default;
        Entry operator*() const {
            const Stored &e = (*entries_)[i_];
            return Entry{e.key, e.data};
        }
        iterator &operator++() {
            ++i_;
            return *this;
        }
        using detail::ForwardIterator<iterator, Entry>::operator++;
        bool operator==(const iterator &other) const { return entries_ == other.entries_ && i_ == other.i_; }

      private:
        friend class ReadSection;
        struct Stored {
            std::string key;
            const void *data;
        };
        using Entries = std::vector<Stored>;
        iterator(std::shared_ptr<const Entries> entries, size_t i) : entries_(std::move(entries)), i_(i) {}
        std::shared_ptr<const Entries> entries_;
        size_t i_ = 0;
    };

    explicit ReadSection(const Map &map) { detail::check(amap_read_begin(map.get(), read_.out())); }
    /// A section on the snapshot's generation (amap_snapshot_read_begin):
    /// borrowed reads where Snapshot::get retains each value. It holds that
    /// generation itself, so it may outlive the Snapshot.
    explicit ReadSection(const Snapshot &snapshot);
    ReadSection(const ReadSection &) = delete;
    ReadSection &operator=(const ReadSection &) = delete;
    ReadSection(ReadSection &&) = delete;
    ReadSection &operator=(ReadSection &&) = delete;
    static void *operator new(size_t) = delete;
    static void *operator new[](size_t) = delete;

    /// Calls `f(data)` with the borrowed data for `key`; returns whether found.
    template <class F> bool visit(std::string_view key, F &&f) const {
        void *data = get_unchecked(key);
        if (!data) return false;
        std::forward<F>(f)(static_cast<const void *>(data));
        return true;
    }
    /// The borrowed data for `key` or nullptr; valid until this section ends.
    void *get_unchecked(std::string_view key) const {
        void *data = nullptr;
        amap_status_t s = amap_read_get(read_.get(), detail::bytes(key), key.size(), &data);
        if (s == AMAP_NOT_FOUND) return nullptr;
        detail::check(s);
        return data;
    }
    /// Whether `key` is in the section's generation (amap_read_contains).
    bool contains(std::string_view key) const {
        uint8_t present = 0;
        detail::check(amap_read_contains(read_.get(), detail::bytes(key), key.size(), &present));
        return present != 0;
    }
    /// The number of entries in the section's generation (amap_read_len).
    size_t size() const {
        size_t n = 0;
        detail::check(amap_read_len(read_.get(), &n));
        return n;
    }
    /// The id of the section's generation (amap_read_generation): 0 for a new
    /// map's, one more per clear; the id of the Ticket of the clear or replace that retires it.
    uint64_t generation() const {
        uint64_t id = 0;
        detail::check(amap_read_generation(read_.get(), &id));
        return id;
    }
    /// Calls `f(key, data)` for each entry (amap_read_for_each: no lock is held
    /// while `f` runs, so it may call into the map); `f` returns true to go on,
    /// false to stop. `key` is valid for the call, `data` until the section ends.
    /// An exception thrown by `f` stops the walk and is rethrown here (it never
    /// crosses the C frames).
    template <class F> void for_each(F &&f) const {
        detail::Callback<F> walk{f};
        amap_status_t s = amap_read_for_each(read_.get(), &call<F>, &walk);
        walk.rethrow(); // the callback's exception first: it explains the rest
        detail::check(s);
    }

    /// Collects the entries (see the class comment) and returns the first.
    iterator begin() {
        auto entries = std::make_shared<iterator::Entries>();
        for_each([&entries](std::string_view key, const void *data) {
            entries->push_back(iterator::Stored{std::string(key), data});
            return true;
        });
        walks_.push_back(entries); // the keys live as long as the section
        return iterator(std::move(entries), 0);
    }
    /// The end of the entries collected by the last begin().
    iterator end() const {
        if (walks_.empty()) return iterator();
        return iterator(walks_.back(), walks_.back()->size());
    }

  private:
    // Called from C: never throws (an exception stops the walk: `for_each`).
    template <class F> static int32_t call(const uint8_t *key, size_t len, void *data, void *user) noexcept {
        std::string_view k(reinterpret_cast<const char *>(key), len);
        bool go_on = static_cast<detail::Callback<F> *>(user)->call(false, k, static_cast<const void *>(data));
        return go_on ? 0 : 1;
    }

    detail::Owned<amap_read_t, amap_read_end> read_;
    /// The entries of every loop over this section (kept until it ends).
    std::vector<std::shared_ptr<const iterator::Entries>> walks_;
};

/// A view of one generation; it never sees a clear. Move-only. Iterate with
/// range-for over (key, Value) entries: the entries are copied (keys) and retained
/// (values) when iteration begins, so the loop body may call into the map.
class Snapshot {
  public:
    struct Entry {
        std::string key;
        Value value;
    };

    explicit Snapshot(amap_snapshot_t *snap) noexcept : snap_(snap) {}

    std::optional<Value> get(std::string_view key) const {
        amap_value_t *v = nullptr;
        amap_status_t s = amap_snapshot_get(snap_.get(), detail::bytes(key), key.size(), &v);
        if (s == AMAP_NOT_FOUND) return std::nullopt;
        detail::check(s);
        return Value(v);
    }
    size_t size() const {
        size_t n = 0;
        detail::check(amap_snapshot_len(snap_.get(), &n));
        return n;
    }
    /// Whether `key` is in the snapshot's generation (amap_snapshot_contains).
    bool contains(std::string_view key) const {
        uint8_t present = 0;
        detail::check(amap_snapshot_contains(snap_.get(), detail::bytes(key), key.size(), &present));
        return present != 0;
    }
    /// The id of the snapshot's generation (amap_snapshot_generation): 0 for a
    /// new map's, one more per clear; the id of the Ticket of the clear or replace that
    /// retires it.
    uint64_t generation() const {
        uint64_t id = 0;
        detail::check(amap_snapshot_generation(snap_.get(), &id));
        return id;
    }
    /// The C snapshot, still owned by this object.
    const amap_snapshot_t *get() const noexcept { return snap_.get(); }
    /// All entries, keys copied and values retained.
    std::vector<Entry> entries() const {
        Collected out;
        detail::check(amap_snapshot_foreach(snap_.get(), &collect, &out));
        if (out.failed) detail::check(AMAP_PANIC);
        return std::move(out.entries);
    }
    std::vector<Entry>::const_iterator begin() {
        entries_ = entries();
        return entries_.cbegin();
    }
    std::vector<Entry>::const_iterator end() const { return entries_.cend(); }

  private:
    // Called from C: must not throw through it. A failure stops the walk and is
    // reported by `entries` (no exception crosses the C frames).
    static int32_t collect(const uint8_t *key, size_t len, const amap_value_t *value, void *user) noexcept {
        auto *out = static_cast<Collected *>(user);
#if AMAP_HPP_EXCEPTIONS
        try {
#endif
            out->entries.reserve(out->entries.size() + 1);
            if (amap_value_retain(value) != AMAP_OK) {
                out->failed = true;
                return 1;
            }
            out->entries.push_back(Entry{std::string(reinterpret_cast<const char *>(key), len),
                                         Value(const_cast<amap_value_t *>(value))});
            return 0;
#if AMAP_HPP_EXCEPTIONS
        } catch (...) {
            out->failed = true;
            return 1;
        }
#endif
    }

    struct Collected {
        std::vector<Entry> entries;
        bool failed = false;
    };

    detail::Owned<amap_snapshot_t, amap_snapshot_release> snap_;
    std::vector<Entry> entries_;
};

inline ReadSection::ReadSection(const Snapshot &snapshot) {
    detail::check(amap_snapshot_read_begin(snapshot.get(), read_.out()));
}

inline Snapshot Map::snapshot() const {
    amap_snapshot_t *snap = nullptr;
    detail::check(amap_snapshot(map_.get(), &snap));
    return Snapshot(snap);
}

inline Batch::Batch(const Map &map) { detail::check(amap_batch_new(map.get(), batch_.out())); }

/// A retained T from a TypedMap<T>: one reference, as Value (copy = retain, move =
/// transfer, destruction = release). Read-only: the T is shared with every reader.
/// A moved-from TypedValue is empty (get() is nullptr).
template <class T> class TypedValue {
  public:
    explicit TypedValue(Value value) noexcept : value_(std::move(value)) {}
    const T &operator*() const noexcept { return *get(); }
    const T *operator->() const noexcept { return get(); }
    const T *get() const noexcept { return static_cast<const T *>(value_.data()); }
    explicit operator bool() const noexcept { return static_cast<bool>(value_); }
    /// The untyped handle (for C interop), still owned by this TypedValue.
    const Value &untyped() const noexcept { return value_; }

  private:
    Value value_;
};

template <class T> class TypedSnapshot;

/// A map whose values are T objects: each is allocated with `new T(...)` when it
/// is inserted and deleted (its destructor run) exactly once, through the C
/// destructor, after its last holder lets go, possibly on another thread (T's
/// destructor must allow that). Reads return TypedValue<T> (no casts). Move-only.
///
/// The untyped Map underneath is reachable read-only through untyped() (for
/// amap::ReadSection, Snapshot, stats, and the C handle), never for inserting: a
/// TypedMap<T> holds only T objects, so its values may be read as T by anyone.
template <class T> class TypedMap {
  public:
    TypedMap() = default;
    explicit TypedMap(const Options &options) : map_(options) {}

    /// Maps `key` to `value`, moved (or copied) into a new T.
    void insert(std::string_view key, T value) { insert(key, std::make_unique<T>(std::move(value))); }
    /// Maps `key` to an object the map now owns.
    void insert(std::string_view key, std::unique_ptr<T> value) { map_.insert(key, std::move(value)); }
    /// Maps `key` to a T constructed in place from `args`.
    template <class... Args> void emplace(std::string_view key, Args &&...args) {
        insert(key, std::make_unique<T>(std::forward<Args>(args)...));
    }
    /// A retained T, or nullopt.
    std::optional<TypedValue<T>> get(std::string_view key) const {
        std::optional<Value> v = map_.get(key);
        if (!v) return std::nullopt;
        return TypedValue<T>(std::move(*v));
    }
    /// Maps `key` to `value`, moved into a new T, only if the key is absent (one
    /// step). Returns the T now mapped (the new one, or the one already there) and
    /// whether it was inserted; if it was not, the new T is deleted here.
    std::pair<TypedValue<T>, bool> try_insert(std::string_view key, T value) {
        auto owned = std::make_unique<T>(std::move(value));
        auto [v, inserted] = map_.try_insert(key, owned);
        return {TypedValue<T>(std::move(v)), inserted};
    }
    /// Maps `key` to `value`, moved into a new T, and returns the T it replaced
    /// (retained), or nullopt if the key was absent (one step).
    std::optional<TypedValue<T>> exchange(std::string_view key, T value) {
        return exchange(key, std::make_unique<T>(std::move(value)));
    }
    /// Maps `key` to an object the map now owns, as above.
    std::optional<TypedValue<T>> exchange(std::string_view key, std::unique_ptr<T> value) {
        std::optional<Value> v = map_.exchange(key, std::move(value));
        if (!v) return std::nullopt;
        return TypedValue<T>(std::move(*v));
    }
    bool remove(std::string_view key) { return map_.remove(key); }
    /// Removes `key` and returns its T (retained), or nullopt.
    std::optional<TypedValue<T>> take(std::string_view key) {
        std::optional<Value> v = map_.take(key);
        if (!v) return std::nullopt;
        return TypedValue<T>(std::move(*v));
    }
    /// Removes `key` only if it still maps to `expected`'s T (by identity).
    bool remove_if_same(std::string_view key, const TypedValue<T> &expected) {
        return map_.remove_if_same(key, expected.untyped());
    }
    /// Map::visit: calls `f(const T &)` with the T mapped to `key`, borrowed for
    /// the call, and returns true, or returns false without calling it.
    template <class F> bool visit(std::string_view key, F &&f) const {
        return map_.visit(key, [&f](const void *data) { f(*static_cast<const T *>(data)); });
    }
    bool contains(std::string_view key) const { return map_.contains(key); }
    /// Map::flush: destroys the Ts this map released before the call.
    bool flush(std::chrono::milliseconds timeout = std::chrono::milliseconds(-1)) const {
        return map_.flush(timeout);
    }
    /// Sets `key` to a new T made by `f(current)` (`current`: the T mapped, or
    /// nullptr if the key is absent), in one step with respect to other writers of
    /// the key (amap_compute): a counter's increment, a merge, no update lost to a
    /// racing writer. Returns the T now mapped; holders of the old one keep it. `f`
    /// runs under the key's shard lock: it must not write to this map, nor wait for
    /// reclamation or run it (reclaim(), a Batch's destruction: a destructor may
    /// write to this map); reads are fine. An exception thrown by `f` leaves the
    /// entry as it was and is rethrown here.
    template <class F> TypedValue<T> upsert(std::string_view key, F &&f) {
        Upsert<F> call{f};
        amap_value_t *v = nullptr;
        amap_status_t s = amap_compute(map_.get(), detail::bytes(key), key.size(), &Upsert<F>::call, &call, &v);
        Value now(v); // owned before anything throws: a kept value is retained too
        call.rethrow();
        detail::check(s);
        return TypedValue<T>(std::move(now));
    }
    /// Keeps only the entries for which `keep(key, const T &)` returns true; returns
    /// how many it removed (see Map::retain: `keep` must not write to this map).
    template <class F> size_t retain(F &&keep) {
        return map_.retain([&keep](std::string_view key, const void *data) {
            return keep(key, *static_cast<const T *>(data));
        });
    }
    size_t size() const { return map_.size(); }
    /// See Map::capacity, Map::reserve, Map::try_reserve and Map::shrink_to_fit.
    size_t capacity() const { return map_.capacity(); }
    void reserve(size_t additional) { map_.reserve(additional); }
    [[nodiscard]] bool try_reserve(size_t additional) { return map_.try_reserve(additional); }
    void shrink_to_fit() { map_.shrink_to_fit(); }
    /// O(1) clear (see Map::clear_async).
    Ticket clear_async() { return map_.clear_async(); }
    /// Publishes a range of (key, T) or (key, std::unique_ptr<T>) pairs as the
    /// whole contents, with one swap: readers see the old contents or the new,
    /// never a mix. Values are moved from a non-const range, copied from a const one.
    template <class Range> Ticket replace(Range &&entries) {
        Batch batch(map_);
        for (auto &&entry : entries) {
            auto &&[key, value] = entry;
            if constexpr (detail::is_unique_ptr<detail::plain_t<decltype(value)>>::value) {
                batch.insert(key, std::unique_ptr<T>(std::move(value)));
            } else {
                batch.insert(key, std::make_unique<T>(std::move(value)));
            }
        }
        return map_.replace(std::move(batch));
    }
    /// Manual mode: tears retired generations down on this thread.
    size_t reclaim() { return map_.reclaim(); }
    Stats stats() const { return map_.stats(); }
    /// A snapshot of the current generation, whose values are read as T
    /// (amap_snapshot; see Snapshot).
    inline TypedSnapshot<T> snapshot() const;
    /// The untyped map, read-only (its values are T objects).
    const Map &untyped() const noexcept { return map_; }

  private:
    /// upsert's callable, called by amap_compute through its `user` pointer. An
    /// exception is caught there (it must never cross the C frames): the entry is
    /// kept, and `rethrow` throws it once amap_compute has returned.
    template <class F> struct Upsert {
        F &f;
#if AMAP_HPP_EXCEPTIONS
        std::exception_ptr error{};
#endif
        static int32_t call(const void *current, uint8_t present, void *user, amap_new_value_t *out_new) noexcept {
            auto *self = static_cast<Upsert *>(user);
#if AMAP_HPP_EXCEPTIONS
            try {
#endif
                const T *now = present ? static_cast<const T *>(current) : nullptr;
                out_new->data = std::make_unique<T>(self->f(now)).release();
                out_new->dtor = detail::delete_as<T>;
                return AMAP_COMPUTE_INSERT;
#if AMAP_HPP_EXCEPTIONS
            } catch (...) {
                self->error = std::current_exception();
                return AMAP_COMPUTE_KEEP;
            }
#endif
        }
        void rethrow() const {
#if AMAP_HPP_EXCEPTIONS
            if (error) std::rethrow_exception(error);
#endif
        }
    };

    Map map_;
};

/// A Snapshot of a TypedMap<T>: one generation, never cleared under it, whose
/// values are read as T (TypedMap::snapshot). Move-only, as Snapshot; it may
/// outlive its map.
template <class T> class TypedSnapshot {
  public:
    /// A retained T of the snapshot's generation, or nullopt.
    std::optional<TypedValue<T>> get(std::string_view key) const {
        std::optional<Value> v = snapshot_.get(key);
        if (!v) return std::nullopt;
        return TypedValue<T>(std::move(*v));
    }
    bool contains(std::string_view key) const { return snapshot_.contains(key); }
    size_t size() const { return snapshot_.size(); }
    /// See Snapshot::generation.
    uint64_t generation() const { return snapshot_.generation(); }
    /// The untyped snapshot (its values are T objects), still owned by this one.
    const Snapshot &untyped() const noexcept { return snapshot_; }

  private:
    friend class TypedMap<T>;
    explicit TypedSnapshot(Snapshot snapshot) noexcept : snapshot_(std::move(snapshot)) {}
    Snapshot snapshot_;
};

template <class T> TypedSnapshot<T> TypedMap<T>::snapshot() const { return TypedSnapshot<T>(map_.snapshot()); }

/// A ReadSection over a TypedMap<T>: borrowed `const T &` without counting, valid
/// until the section ends. Same rules as ReadSection (one thread, one scope).
template <class T> class TypedReadSection {
  public:
    struct Entry {
        std::string_view key;
        const T &value;
    };
    class iterator : public detail::ForwardIterator<iterator, Entry> {
      public:
        iterator() = default;
        explicit iterator(ReadSection::iterator it) : it_(it) {}
        Entry operator*() const {
            ReadSection::Entry e = *it_;
            return Entry{e.key, *e.as<T>()};
        }
        iterator &operator++() {
            ++it_;
            return *this;
        }
        using detail::ForwardIterator<iterator, Entry>::operator++;
        bool operator==(const iterator &other) const { return it_ == other.it_; }

      private:
        ReadSection::iterator it_;
    };

    explicit TypedReadSection(const TypedMap<T> &map) : read_(map.untyped()) {}
    /// A section on the snapshot's generation (see ReadSection(const Snapshot &)):
    /// it may outlive the TypedSnapshot.
    explicit TypedReadSection(const TypedSnapshot<T> &snapshot) : read_(snapshot.untyped()) {}
    TypedReadSection(const TypedReadSection &) = delete;
    TypedReadSection &operator=(const TypedReadSection &) = delete;
    static void *operator new(size_t) = delete;
    static void *operator new[](size_t) = delete;

    /// Calls `f(value)` with the borrowed T for `key`; returns whether found.
    template <class F> bool visit(std::string_view key, F &&f) const {
        return read_.visit(key, [&](const void *data) { std::forward<F>(f)(*static_cast<const T *>(data)); });
    }
    /// The borrowed T for `key` or nullptr; valid until this section ends.
    const T *get_unchecked(std::string_view key) const { return static_cast<const T *>(read_.get_unchecked(key)); }
    /// See ReadSection::contains, size and generation.
    bool contains(std::string_view key) const { return read_.contains(key); }
    size_t size() const { return read_.size(); }
    uint64_t generation() const { return read_.generation(); }
    /// Calls `f(key, value)` for each entry until it returns false (see ReadSection::for_each).
    template <class F> void for_each(F &&f) const {
        read_.for_each([&](std::string_view key, const void *data) { return f(key, *static_cast<const T *>(data)); });
    }
    iterator begin() { return iterator(read_.begin()); }
    iterator end() const { return iterator(read_.end()); }

  private:
    ReadSection read_;
};

} // namespace amap

#endif // AMAP_HPP
