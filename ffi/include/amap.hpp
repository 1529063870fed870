// atomic-map for C++17: a header-only RAII layer over the C ABI (amap.h).
//
//   amap::Map          the map; move-only, frees on destruction
//   amap::Value        a retained value; copy = retain, move = transfer, destroy = release
//   amap::ReadSection  a pinned read section; borrowed pointers only inside `visit`
//   amap::Snapshot     a view of one generation, iterable with range-for
//   amap::Error        thrown on failure, carries the amap_status_t and its text
//
// Ownership in C++ terms: a Value owns one reference and keeps the value (and the
// data it wraps) alive across clear_async(), remove() and the Map's destruction.
// Data pointers obtained inside ReadSection::visit are borrowed for the callback only.
//
// Without exceptions (-fno-exceptions, or AMAP_NO_EXCEPTIONS defined), an operation
// that would throw prints the status and aborts; the outcomes that are not errors
// (a missing key, a wait that timed out) are std::optional / bool in both modes.
// See docs/BINDINGS.md.
#ifndef AMAP_HPP
#define AMAP_HPP

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "amap.h"

#if !defined(AMAP_NO_EXCEPTIONS) && (defined(__cpp_exceptions) || defined(__EXCEPTIONS))
#define AMAP_HPP_EXCEPTIONS 1
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

class ReadSection;
class Snapshot;

/// Options for Map; the defaults are the C defaults.
struct Options {
    uint32_t reclaim_mode = AMAP_RECLAIM_BACKGROUND;
    size_t shards = 0;
    bool trim_memory = true;
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
        detail::check(amap_new_with(&o, &map_));
    }
    Map(const Map &) = delete;
    Map &operator=(const Map &) = delete;
    Map(Map &&other) noexcept : map_(std::exchange(other.map_, nullptr)) {}
    Map &operator=(Map &&other) noexcept {
        if (this != &other) {
            amap_free(map_);
            map_ = std::exchange(other.map_, nullptr);
        }
        return *this;
    }
    ~Map() { amap_free(map_); }

    /// Maps `key` to `data`; `dtor(data, ctx)` runs exactly once, on any thread,
    /// after the last holder lets go.
    void insert(std::string_view key, void *data, amap_dtor_fn dtor, void *ctx = nullptr) {
        detail::check(amap_insert(map_, detail::bytes(key), key.size(), data, dtor, ctx));
    }
    /// Maps `key` to an object the map now owns (deleted as a T, on any thread).
    template <class T> void insert(std::string_view key, std::unique_ptr<T> value) {
        detail::check(amap_insert(map_, detail::bytes(key), key.size(), value.get(), detail::delete_as<T>, nullptr));
        value.release();
    }
    /// Removes `key`; returns whether it was there.
    bool remove(std::string_view key) {
        amap_status_t s = amap_remove(map_, detail::bytes(key), key.size());
        if (s == AMAP_NOT_FOUND) return false;
        detail::check(s);
        return true;
    }
    /// A retained value, or nullopt.
    std::optional<Value> get(std::string_view key) const {
        amap_value_t *v = nullptr;
        amap_status_t s = amap_get(map_, detail::bytes(key), key.size(), &v);
        if (s == AMAP_NOT_FOUND) return std::nullopt;
        detail::check(s);
        return Value(v);
    }
    bool contains(std::string_view key) const {
        uint8_t present = 0;
        detail::check(amap_contains(map_, detail::bytes(key), key.size(), &present));
        return present != 0;
    }
    size_t size() const {
        size_t n = 0;
        detail::check(amap_len(map_, &n));
        return n;
    }
    /// O(1) clear; returns the retired generation's id.
    uint64_t clear_async() {
        uint64_t id = 0;
        detail::check(amap_clear_async(map_, &id));
        return id;
    }
    /// Whether generation `id` was torn down within `timeout` (negative: forever).
    bool wait_reclaimed(uint64_t id, std::chrono::milliseconds timeout = std::chrono::milliseconds(-1)) {
        amap_status_t s = amap_wait_reclaimed(map_, id, static_cast<int64_t>(timeout.count()));
        if (s == AMAP_TIMED_OUT) return false;
        detail::check(s);
        return true;
    }
    /// Manual mode: tears retired generations down on this thread.
    size_t reclaim() {
        size_t n = 0;
        detail::check(amap_reclaim(map_, &n));
        return n;
    }
    Stats stats() const {
        Stats s{};
        detail::check(amap_stats(map_, &s));
        return s;
    }
    inline Snapshot snapshot() const;
    /// The C handle, still owned by this Map.
    const amap_t *get() const noexcept { return map_; }

  private:
    amap_t *map_ = nullptr;
};

/// A pinned read section: borrowed reads without reference counting. It belongs
/// to the thread that created it and cannot be copied, moved or heap-allocated, so
/// it lives in one scope of one thread. Borrowed data is handed to a callback
/// (`visit`) and cannot escape it by construction; `get_unchecked` is the escape
/// hatch, valid until the section ends.
class ReadSection {
  public:
    explicit ReadSection(const Map &map) { detail::check(amap_read_begin(map.get(), &read_)); }
    ReadSection(const ReadSection &) = delete;
    ReadSection &operator=(const ReadSection &) = delete;
    ReadSection(ReadSection &&) = delete;
    ReadSection &operator=(ReadSection &&) = delete;
    static void *operator new(size_t) = delete;
    static void *operator new[](size_t) = delete;
    ~ReadSection() { amap_read_end(read_); }

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
        amap_status_t s = amap_read_get(read_, detail::bytes(key), key.size(), &data);
        if (s == AMAP_NOT_FOUND) return nullptr;
        detail::check(s);
        return data;
    }

  private:
    amap_read_t *read_ = nullptr;
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
    Snapshot(const Snapshot &) = delete;
    Snapshot &operator=(const Snapshot &) = delete;
    Snapshot(Snapshot &&other) noexcept
        : snap_(std::exchange(other.snap_, nullptr)), entries_(std::move(other.entries_)) {}
    Snapshot &operator=(Snapshot &&other) noexcept {
        if (this != &other) {
            amap_snapshot_release(snap_);
            snap_ = std::exchange(other.snap_, nullptr);
            entries_ = std::move(other.entries_);
        }
        return *this;
    }
    ~Snapshot() { amap_snapshot_release(snap_); }

    std::optional<Value> get(std::string_view key) const {
        amap_value_t *v = nullptr;
        amap_status_t s = amap_snapshot_get(snap_, detail::bytes(key), key.size(), &v);
        if (s == AMAP_NOT_FOUND) return std::nullopt;
        detail::check(s);
        return Value(v);
    }
    size_t size() const {
        size_t n = 0;
        detail::check(amap_snapshot_len(snap_, &n));
        return n;
    }
    /// All entries, keys copied and values retained.
    std::vector<Entry> entries() const {
        Collected out;
        detail::check(amap_snapshot_foreach(snap_, &collect, &out));
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

    amap_snapshot_t *snap_;
    std::vector<Entry> entries_;
};

inline Snapshot Map::snapshot() const {
    amap_snapshot_t *snap = nullptr;
    detail::check(amap_snapshot(map_, &snap));
    return Snapshot(snap);
}

} // namespace amap

#endif // AMAP_HPP
