// The C++ binding: its API, what it prevents at compile time, and the scenario
// that motivates the project: reader threads keep amap::Values across
// clear_async() called from another thread; every destructor runs exactly once.
// Then batches and Map::replace, tickets, the conditional writes (try_insert, take,
// remove_if_same, TypedMap::upsert), range-for over a ReadSection, a reclaimer
// of the program's own (amap::Reclaimer, Options::reclaimer),
// Options::destructors_on_releasing_threads (a releasing thread destroys what it
// released, for a map that asks; never otherwise), the typed
// layer (TypedMap<T>: every T destroyed exactly once, counted), and reader threads
// that never see a mix of two versions across 1,000 reloads.
#include <atomic>
#include <cassert>
#include <cstdio>
#include <cstring>
#include <memory>
#include <thread>
#include <type_traits>
#include <vector>

#include "amap.hpp"

#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (!(cond)) {                                                                \
            std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            std::abort();                                                             \
        }                                                                             \
    } while (0)

// What the types allow, checked at compile time.
static_assert(!std::is_copy_constructible_v<amap::Map> && std::is_move_constructible_v<amap::Map>);
static_assert(std::is_copy_constructible_v<amap::Value> && std::is_nothrow_move_constructible_v<amap::Value>);
static_assert(!std::is_copy_constructible_v<amap::ReadSection> && !std::is_move_constructible_v<amap::ReadSection>);
static_assert(!std::is_copy_constructible_v<amap::Snapshot> && std::is_move_constructible_v<amap::Snapshot>);
static_assert(!std::is_copy_constructible_v<amap::Ticket> && std::is_nothrow_move_constructible_v<amap::Ticket>);
static_assert(!std::is_copy_constructible_v<amap::Batch> && std::is_nothrow_move_constructible_v<amap::Batch>);
static_assert(!std::is_copy_constructible_v<amap::Reclaimer> &&
              std::is_nothrow_move_constructible_v<amap::Reclaimer>);
static_assert(!std::is_copy_constructible_v<amap::TypedMap<int>> && std::is_move_constructible_v<amap::TypedMap<int>>);
static_assert(std::is_copy_constructible_v<amap::TypedValue<int>> &&
              std::is_nothrow_move_constructible_v<amap::TypedValue<int>>);
static_assert(!std::is_copy_constructible_v<amap::TypedReadSection<int>> &&
              !std::is_move_constructible_v<amap::TypedReadSection<int>>);
// A TypedValue is read-only: the T is shared with every reader.
static_assert(std::is_same_v<decltype(*std::declval<amap::TypedValue<int>>()), const int &>);
static_assert(std::is_same_v<decltype(std::declval<amap::TypedValue<int>>().operator->()), const int *>);

namespace {

constexpr unsigned kLive = 0x5AFEC0DE, kDead = 0xDEADDEAD;
constexpr size_t kMaxValues = 2'000'000;
std::unique_ptr<std::atomic<int>[]> destroyed_times(new std::atomic<int>[kMaxValues]);
std::atomic<size_t> created{0}, destroyed{0};

struct Tracked {
    unsigned magic = kLive;
    size_t id;
    explicit Tracked(size_t i) : id(i) {}
    ~Tracked() {
        CHECK(magic == kLive);
        magic = kDead;
        CHECK(destroyed_times[id].fetch_add(1) == 0);
        destroyed.fetch_add(1);
    }
    void check() const { CHECK(magic == kLive); }
};

std::unique_ptr<Tracked> make() {
    size_t id = created.fetch_add(1);
    CHECK(id < kMaxValues);
    return std::make_unique<Tracked>(id);
}

void drain(amap::Map &map) {
    for (int i = 0; i < 10000; i++) {
        map.reclaim();
        amap::Stats s = map.stats();
        if (s.retired_generations == 0 && s.pending_values == 0) return;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    CHECK(!"garbage did not drain");
}

// Two maps on a manual reclaimer of their own: nothing is torn down until the
// program calls it, then both generations are, on this thread.
void own_reclaimer() {
    amap::Reclaimer manual(AMAP_RECLAIM_MANUAL);
    amap::Options options;
    options.reclaimer = &manual;
    amap::Map a(options), b(options);
    a.insert("a", make());
    b.insert("b", make());
    amap::Ticket ta = a.clear_async(), tb = b.clear_async();
    CHECK(!ta.is_reclaimed() && !tb.is_reclaimed());
    // One call tears both down when no other thread is pinned meanwhile; the
    // process-wide reclaimer's thread (started by the tests above) pins during its
    // own passes, and a call that meets one leaves the rest to a later call. So: a
    // few calls, all on this thread (as test_reclaimer.c does).
    size_t torn_down = 0;
    for (int call = 0; call < 100 && torn_down < 2; call++) {
        torn_down += manual.reclaim();
        if (torn_down < 2) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    CHECK(torn_down == 2);
    CHECK(ta.is_reclaimed() && tb.is_reclaimed());
    a.insert("c", make());
    CHECK(a.remove("c"));
    CHECK(manual.flush()); // the removed value's grace period, then its destructor
    CHECK(a.stats().pending_values == 0);
    // A map's own flush does the same for it (its manual reclaimer runs nothing
    // unless asked: without the flush the value stays pending).
    b.insert("d", make());
    CHECK(b.remove("d"));
    CHECK(b.stats().pending_values == 1);
    CHECK(b.flush(std::chrono::seconds(10)));
    CHECK(b.stats().pending_values == 0);
}

// Where the destructors of released values ran: on this (the releasing) thread or
// elsewhere.
std::thread::id releasing_thread;
std::atomic<size_t> released_made{0}, released_here{0}, released_elsewhere{0};

struct Released {
    ~Released() {
        if (std::this_thread::get_id() == releasing_thread)
            released_here.fetch_add(1);
        else
            released_elsewhere.fetch_add(1);
    }
};

void replace_many(amap::Map &map, int n) {
    for (int i = 0; i < n; i++) {
        map.insert("k", std::make_unique<Released>());
        released_made.fetch_add(1);
    }
}

void wait_for_released() {
    amap::Map driver;
    for (int i = 0; i < 10000 && released_here.load() + released_elsewhere.load() < released_made.load(); i++)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    CHECK(released_here.load() + released_elsewhere.load() == released_made.load());
}

// By default a released value's destructor runs on the reclaimer's thread; with
// Options::destructors_on_releasing_threads, this thread's releases destroy some
// (a help destroys its batch itself when no other thread is pinned: a few rounds,
// until one did).
void releasing_threads() {
    releasing_thread = std::this_thread::get_id();
    {
        amap::Map map;
        replace_many(map, 8 * 1024);
    }
    wait_for_released();
    CHECK(released_here.load() == 0);
    amap::Options options;
    options.destructors_on_releasing_threads = true;
    {
        amap::Map map(options);
        for (int round = 0; released_here.load() == 0; round++) {
            CHECK(round < 100);
            replace_many(map, 1024);
        }
    }
    wait_for_released();
}

void api() {
    amap::Options manual;
    manual.reclaim_mode = AMAP_RECLAIM_MANUAL;
    amap::Map map(manual);
    map.insert("a", make());
    map.insert("b", make());
    CHECK(map.size() == 2 && map.contains("a") && !map.contains("zz"));
    CHECK(!map.get("zz").has_value());

    std::optional<amap::Value> a = map.get("a");
    CHECK(a && a->as<Tracked>()->id == 0);
    amap::Value copy = *a;               // retain
    amap::Value moved = std::move(copy); // transfer: `copy` is now empty
    CHECK(!copy && moved && moved.as<Tracked>() == a->as<Tracked>());
    CHECK(copy.data() == nullptr);       // a moved-from Value is empty, not dangling

    {
        amap::ReadSection read(map);
        bool found = read.visit("b", [](const void *data) { static_cast<const Tracked *>(data)->check(); });
        CHECK(found && !read.visit("zz", [](const void *) { CHECK(false); }));
    }
    // One-call visits: no section to hold; the data is the one get() retains.
    const void *visited = nullptr;
    CHECK(map.visit("a", [&visited](const void *data) { visited = data; }));
    CHECK(visited == a->data() && !map.visit("zz", [](const void *) { CHECK(false); }));
#if AMAP_HPP_EXCEPTIONS
    bool visit_threw = false;
    try {
        map.visit("a", [](const void *) { throw std::runtime_error("from visit"); });
    } catch (const std::runtime_error &e) {
        visit_threw = std::string(e.what()) == "from visit";
    }
    CHECK(visit_threw);
#endif

    amap::Snapshot snap = map.snapshot();
    amap::Ticket retired = map.clear_async();
    CHECK(retired && retired.id() == 0 && !retired.is_reclaimed());
    CHECK(map.size() == 0 && snap.size() == 2);
    size_t seen = 0;
    for (const auto &entry : snap) {
        CHECK(entry.key == "a" || entry.key == "b");
        entry.value.as<Tracked>()->check();
        seen++;
    }
    CHECK(seen == 2);
    CHECK(!retired.wait(std::chrono::milliseconds(0))); // the snapshot holds it
    { amap::Snapshot gone = std::move(snap); }
    CHECK(map.reclaim() == 1);
    CHECK(retired.wait(std::chrono::milliseconds(0)) && retired.is_reclaimed());
    amap::Ticket moved_ticket = std::move(retired);
    CHECK(!retired && retired.id() == 0 && moved_ticket.id() == 0);
    CHECK(destroyed.load() == 1); // "b"; "a" is still held twice
    CHECK(map.remove("nothing") == false);

    bool threw = false;
    try {
        amap::Options bad;
        bad.reclaim_mode = 42;
        amap::Map never(bad);
    } catch (const amap::Error &e) {
        threw = e.status() == AMAP_INVALID_ARGUMENT && std::strstr(e.what(), "out of range") != nullptr;
    }
    CHECK(threw);

    amap::Map moved_map = std::move(map);
    moved_map.insert("c", make());
    CHECK(moved_map.remove("c"));
    a.reset();
    moved.as<Tracked>()->check(); // still held by `moved`, across the clear
    { amap::Value last = std::move(moved); }
    drain(moved_map);
    CHECK(destroyed.load() == created.load());
}

// Chapter 4.4: readers keep Values across clear_async() called from another thread.
void readers_keep_values_across_clears() {
    amap::Map map;
    std::atomic<bool> stop{false};
    std::atomic<long> clears{0};
    std::vector<std::thread> threads;
    for (int r = 0; r < 4; r++) {
        threads.emplace_back([&, r] {
            std::vector<amap::Value> held;
            unsigned seed = 17u * (r + 1);
            while (!stop.load(std::memory_order_relaxed)) {
                seed = seed * 1103515245u + 12345u;
                std::string key = "k" + std::to_string(seed % 64);
                if (auto v = map.get(key)) {
                    v->as<Tracked>()->check();
                    if (held.size() < 16) {
                        held.push_back(*v); // a copy: one more reference
                    } else {
                        held[seed % 16].as<Tracked>()->check();
                        held[seed % 16] = std::move(*v);
                    }
                }
            }
            for (const auto &v : held) v.as<Tracked>()->check();
        });
    }
    threads.emplace_back([&] {
        while (!stop.load(std::memory_order_relaxed)) {
            map.clear_async();
            clears.fetch_add(1);
            std::this_thread::sleep_for(std::chrono::microseconds(200));
        }
    });
    threads.emplace_back([&] {
        unsigned k = 0;
        while (!stop.load(std::memory_order_relaxed) && created.load() < kMaxValues - 1000) {
            map.insert("k" + std::to_string(k++ % 64), make());
        }
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    stop.store(true);
    for (auto &t : threads) t.join();
    map.clear_async();
    drain(map);
    CHECK(clears.load() > 0);
    std::printf("test_bindings: %zu values, %ld clears\n", created.load(), clears.load());
}

// Batches, Map::replace (from a Batch and from a range), failures, tickets.
void batch_and_replace() {
    amap::Options manual;
    manual.reclaim_mode = AMAP_RECLAIM_MANUAL;
    amap::Map map(manual), other(manual);
    size_t before = destroyed.load();
    map.insert("old", make());
    std::optional<amap::Value> old = map.get("old");

    amap::Batch batch(map);
    batch.insert("a", make());
    batch.insert("b", make());
    CHECK(batch.size() == 2 && map.size() == 1); // nothing visible before the replace
    amap::Ticket ticket = map.replace(std::move(batch));
    CHECK(ticket.id() == 0 && map.size() == 2 && !map.contains("old") && map.contains("a"));
    old->as<Tracked>()->check(); // held across the reload
    CHECK(ticket.wait(std::chrono::milliseconds(0))); // manual mode: the wait runs a pass
    old.reset();

    std::vector<std::pair<std::string, std::unique_ptr<Tracked>>> next;
    next.emplace_back("c", make());
    next.emplace_back("d", make());
    map.replace(next);
    CHECK(map.size() == 2 && map.contains("c") && !next[0].second); // moved from

    {
        amap::Batch unpublished(map);
        unpublished.insert("x", make());
        size_t now = destroyed.load();
        { amap::Batch gone = std::move(unpublished); } // destroyed here, at once
        CHECK(destroyed.load() == now + 1);
    }
    bool threw = false;
    size_t now = destroyed.load();
    try {
        amap::Batch wrong(other);
        wrong.insert("y", make());
        other.insert("z", make());
        map.replace(std::move(wrong)); // made for another map: consumed, destroyed
    } catch (const amap::Error &e) {
        threw = e.status() == AMAP_INVALID_ARGUMENT;
    }
    CHECK(threw && destroyed.load() == now + 1 && map.size() == 2);
    drain(map);
    drain(other);
    CHECK(destroyed.load() == before + 5); // old, a, b (reloaded away), x (unpublished), y (refused)
}

// Range-for and for_each over a read section; the body may write to the map.
void read_section_iteration() {
    amap::Options manual;
    manual.reclaim_mode = AMAP_RECLAIM_MANUAL;
    amap::Map map(manual);
    for (int i = 0; i < 20; i++) map.insert("k" + std::to_string(i), make());
    {
        amap::ReadSection read(map);
        std::vector<const Tracked *> seen;
        for (const amap::ReadSection::Entry &e : read) {
            CHECK(e.key.size() >= 2 && e.key[0] == 'k');
            e.as<Tracked>()->check();
            CHECK(map.remove(e.key)); // no lock held: a write from the loop body
            seen.push_back(e.as<Tracked>());
        }
        CHECK(seen.size() == 20 && map.size() == 0);
        map.clear_async();
        map.reclaim();
        for (const Tracked *t : seen) t->check(); // valid until the section ends
        size_t n = 0;
        for (auto e : read) n += e.key.empty() ? 0 : 1; // the section's generation, again
        CHECK(n == 0);
        size_t calls = 0;
        read.for_each([&](std::string_view, const void *) { return ++calls < 3; });
        CHECK(calls == 0);
    }
    for (int i = 0; i < 5; i++) map.insert("k" + std::to_string(i), make());
    {
        amap::ReadSection read(map);
        size_t calls = 0;
        read.for_each([&](std::string_view, const void *) { return ++calls < 3; });
        CHECK(calls == 3); // stopped by the callback
        bool rethrown = false;
        try {
            read.for_each([](std::string_view, const void *) -> bool { throw std::runtime_error("stop"); });
        } catch (const std::runtime_error &) {
            rethrown = true; // carried across the C frames, not through them
        }
        CHECK(rethrown);
        auto it = read.begin();
        CHECK(std::distance(it, read.end()) == 5);
        size_t pairs = 0;
        std::vector<std::string_view> keys;
        for (const auto &outer : read) { // loops nest; keys stay valid until the section ends
            for (const auto &inner : read) pairs += inner.data != nullptr;
            keys.push_back(outer.key);
        }
        CHECK(pairs == 25 && keys.size() == 5);
        for (std::string_view k : keys) CHECK(k.size() == 2 && k[0] == 'k');
    }
    {
        // What a section and a snapshot say of their generation, and a section
        // over a snapshot: the snapshot's generation, borrowed, after a clear and
        // after the Snapshot object is gone, with reclamation run meanwhile.
        std::optional<amap::Snapshot> before(map.snapshot());
        uint64_t old_generation = before->generation();
        amap::Ticket cleared = map.clear_async();
        map.insert("fresh", make());
        CHECK(before->size() == 5 && before->contains("k1") && !before->contains("fresh"));
        {
            amap::ReadSection now(map);
            CHECK(now.size() == 1 && now.contains("fresh") && !now.contains("k1"));
            CHECK(now.generation() == old_generation + 1 && cleared.id() == old_generation);
        }
        // No section pinned: the passes take the clear's hand-off and grace period
        // past, so that only the snapshot holds the old generation.
        for (int i = 0; i < 8; i++) map.reclaim();
        CHECK(!cleared.is_reclaimed());
        amap::ReadSection older(*before);
        before.reset(); // the section alone holds the old generation now
        for (int i = 0; i < 8; i++) map.reclaim();
        CHECK(!cleared.is_reclaimed());
        CHECK(older.size() == 5 && older.generation() == old_generation && older.contains("k4"));
        CHECK(older.visit("k2", [](const void *d) { static_cast<const Tracked *>(d)->check(); }));
    }
    drain(map);
}

// A type that counts its constructions and destructions, per object.
std::atomic<long> counted_made{0}, counted_gone{0};
constexpr size_t kMaxCounted = 400000;
std::unique_ptr<std::atomic<int>[]> counted_times(new std::atomic<int>[kMaxCounted]);

struct Counted {
    size_t id;
    int version;
    unsigned magic = kLive;
    explicit Counted(int v) : id(next()), version(v) {}
    Counted(const Counted &o) : id(next()), version(o.version) {}
    Counted(Counted &&o) noexcept : id(next()), version(o.version) {}
    Counted &operator=(const Counted &) = delete;
    ~Counted() {
        CHECK(magic == kLive);
        magic = kDead;
        CHECK(counted_times[id].fetch_add(1) == 0);
        counted_gone.fetch_add(1);
    }
    static size_t next() {
        size_t id = static_cast<size_t>(counted_made.fetch_add(1));
        CHECK(id < kMaxCounted);
        return id;
    }
    int get() const {
        CHECK(magic == kLive);
        return version;
    }
};

void typed_map() {
    amap::Options manual;
    manual.reclaim_mode = AMAP_RECLAIM_MANUAL;
    {
        amap::TypedMap<Counted> map(manual);
        map.emplace("a", 1);
        map.insert("b", Counted(2));                   // moved into a new T; the temporary dies here
        map.insert("c", std::make_unique<Counted>(3)); // handed over
        CHECK(map.size() == 3 && map.contains("a") && !map.contains("zz"));
        std::optional<amap::TypedValue<Counted>> a = map.get("a");
        CHECK(a && (*a)->get() == 1 && (**a).version == 1 && a->get()->id == (*a)->id);
        amap::TypedValue<Counted> copy = *a; // a retain
        CHECK(!map.get("zz"));

        amap::Ticket ticket = [&] {
            const std::vector<std::pair<std::string, Counted>> reload{{"a", Counted(10)}, {"d", Counted(40)}};
            return map.replace(reload); // a const range: copied
        }();
        CHECK(map.size() == 2 && map.get("a").value()->get() == 10 && !map.contains("b"));
        CHECK(copy->get() == 1); // held across the reload
        std::vector<std::pair<std::string, std::unique_ptr<Counted>>> owned;
        owned.emplace_back("e", std::make_unique<Counted>(50));
        map.replace(owned); // unique_ptrs: handed over
        CHECK(map.size() == 1 && !owned[0].second);
        {
            amap::TypedReadSection<Counted> read(map);
            CHECK(read.visit("e", [](const Counted &c) { CHECK(c.get() == 50); }));
            CHECK(!read.visit("a", [](const Counted &) { CHECK(false); }));
            CHECK(map.visit("e", [](const Counted &c) { CHECK(c.get() == 50); }));
            CHECK(!map.visit("a", [](const Counted &) { CHECK(false); }));
            CHECK(read.get_unchecked("e")->get() == 50);
            int sum = 0;
            for (const auto &entry : read) sum += entry.value.get();
            read.for_each([&](std::string_view key, const Counted &c) {
                CHECK(key == "e");
                sum += c.get();
                return true;
            });
            CHECK(sum == 100);
            CHECK(read.contains("e") && !read.contains("a") && read.size() == 1);
            CHECK(read.generation() == map.untyped().snapshot().generation());
        }
        {
            // A typed snapshot, and a typed section on it: the generation taken,
            // through a clear and a write, and past the snapshot's own end.
            amap::TypedSnapshot<Counted> snap = map.snapshot();
            const uint64_t taken = snap.generation();
            amap::Ticket cleared = map.clear_async();
            CHECK(cleared.id() == taken);
            map.emplace("g", 70);
            CHECK(snap.size() == 1 && snap.contains("e") && !snap.contains("g"));
            CHECK(snap.get("e").value()->get() == 50 && !snap.get("g"));
            std::optional<amap::TypedReadSection<Counted>> later;
            later.emplace(snap);
            snap = map.snapshot(); // the first snapshot released; the section holds its generation
            CHECK(snap.generation() == taken + 1 && snap.contains("g"));
            CHECK(later->generation() == taken && later->size() == 1);
            CHECK(later->contains("e") && !later->contains("g") && later->get_unchecked("e")->get() == 50);
            CHECK(!cleared.is_reclaimed());
            later.reset();
            map.remove("g");
            map.emplace("e", 50); // as before the block, for what follows
        }
        CHECK(map.remove("e") && !map.remove("e"));
        map.emplace("f", 60);
        CHECK(map.untyped().size() == 1);
        amap::TypedMap<Counted> moved = std::move(map);
        CHECK(moved.size() == 1);
        ticket.wait(std::chrono::milliseconds(0));
        a.reset();
        CHECK(copy->get() == 1);
        moved.clear_async();
        for (int i = 0; i < 10000 && counted_gone.load() + 1 < counted_made.load(); i++) {
            moved.reclaim();
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        CHECK(counted_gone.load() + 1 == counted_made.load()); // all but `copy`'s
    } // the maps are gone; `copy` too, here: its T is destroyed by the process-wide reclaimer
    for (int i = 0; i < 10000 && counted_gone.load() < counted_made.load(); i++) {
        amap::Map driver; // drives the deferred destruction along
        driver.reclaim();
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    CHECK(counted_gone.load() == counted_made.load());
}

// Ticket::on_reclaimed: once per registration, after the teardown and never
// before (a snapshot holds the generation), even with the Ticket gone; at once
// for a generation already torn down; a move-only callable.
void ticket_on_reclaimed() {
    amap::Options manual;
    manual.reclaim_mode = AMAP_RECLAIM_MANUAL;
    amap::TypedMap<int> map(manual);
    map.emplace("a", 1);
    std::atomic<int> runs{0};
    std::atomic<std::thread::id> ran_on{};
    {
        amap::TypedSnapshot<int> held = map.snapshot();
        {
            amap::Ticket ticket = map.clear_async();
            ticket.on_reclaimed([&, two = std::make_unique<int>(2)] {
                runs += *two;
                ran_on = std::this_thread::get_id();
            });
        } // the Ticket is gone; its registration stays
        map.reclaim();
        CHECK(runs.load() == 0);
    } // the snapshot released
    for (int i = 0; i < 10000 && runs.load() == 0; i++) {
        map.reclaim();
        if (runs.load() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    CHECK(runs.load() == 2 && ran_on.load() == std::this_thread::get_id());
    amap::Ticket torn = map.clear_async();
    CHECK(torn.wait(std::chrono::seconds(60)));
    torn.on_reclaimed([&] { runs++; });
    CHECK(runs.load() == 3); // at once
    // A one-shot (&&-qualified) callable, destroyed once, right after its run.
    struct OneShot {
        std::atomic<int> *runs, *destroyed;
        void operator()() && { ++*runs; }
        OneShot(std::atomic<int> *r, std::atomic<int> *d) : runs(r), destroyed(d) {}
        OneShot(OneShot &&other) noexcept : runs(other.runs), destroyed(other.destroyed) { other.destroyed = nullptr; }
        ~OneShot() {
            if (destroyed) ++*destroyed;
        }
    };
    std::atomic<int> destroyed{0};
    torn.on_reclaimed(OneShot(&runs, &destroyed));
    CHECK(runs.load() == 4 && destroyed.load() == 1);
    bool threw = false;
#if AMAP_HPP_EXCEPTIONS
    try {
        amap::Ticket(nullptr).on_reclaimed([] {});
    } catch (const amap::Error &e) {
        threw = e.status() == AMAP_NULL_ARGUMENT;
    }
#else
    threw = true;
#endif
    CHECK(threw);
}

// Reader threads during 1,000 reloads of a TypedMap: every section sees all the
// keys, all of one version; versions never go back.
void readers_during_reloads() {
    constexpr int kKeys = 16, kReloads = 1000;
    amap::TypedMap<Counted> map;
    auto version = [](int v) {
        std::vector<std::pair<std::string, Counted>> next;
        next.reserve(kKeys);
        for (int k = 0; k < kKeys; k++) next.emplace_back("key-" + std::to_string(k), Counted(v));
        return next;
    };
    map.replace(version(0));
    std::atomic<bool> done{false};
    std::vector<std::thread> readers;
    std::atomic<long> sections{0};
    for (int r = 0; r < 2; r++) {
        readers.emplace_back([&] {
            int last = 0;
            long mine = 0;
            while (!done.load() || mine < 10) {
                amap::TypedReadSection<Counted> read(map);
                int seen = 0, v = -1;
                for (const auto &entry : read) {
                    if (seen++ == 0) v = entry.value.get();
                    CHECK(entry.value.get() == v); // never a mix
                }
                CHECK(seen == kKeys); // never empty, never partial
                CHECK(v >= last);
                last = v;
                auto held = map.get("key-3");
                CHECK(held && (*held)->get() >= v);
                mine++;
                std::this_thread::yield(); // under valgrind, lets the writer run
            }
            sections.fetch_add(mine);
        });
    }
    for (int v = 1; v <= kReloads; v++) {
        map.replace(version(v));
        std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    done.store(true);
    for (auto &t : readers) t.join();
    map.clear_async().wait();
    std::printf("test_bindings: %d reloads, %ld read sections\n", kReloads, sections.load());
}

} // namespace

// The conditional writes: try_insert keeps what it could not insert, take hands the
// removed value over, remove_if_same leaves a newer value in place; then the typed
// forms. Every Tracked is destroyed once (checked in main).
void conditional_writes() {
    amap::Options manual;
    manual.reclaim_mode = AMAP_RECLAIM_MANUAL;
    amap::Map map(manual);
    {
        std::unique_ptr<Tracked> first = make();
        Tracked *first_raw = first.get();
        auto [now, inserted] = map.try_insert("k", first);
        CHECK(inserted && !first && now.as<Tracked>() == first_raw);
        std::unique_ptr<Tracked> second = make();
        auto [there, second_inserted] = map.try_insert("k", second);
        CHECK(!second_inserted && second && there.as<Tracked>() == first_raw); // still ours
        CHECK(map.size() == 1);

        map.insert("k", make()); // replaces the first, which `now` still holds
        CHECK(!map.remove_if_same("k", now));
        std::optional<amap::Value> fresh = map.get("k");
        CHECK(fresh && map.remove_if_same("k", *fresh) && !map.contains("k"));
        CHECK(!map.remove_if_same("k", *fresh));
        fresh->as<Tracked>()->check();

        map.insert("t", std::move(second));
        std::optional<amap::Value> taken = map.take("t");
        CHECK(taken && !map.contains("t") && !map.take("t"));
        taken->as<Tracked>()->check();
        now.as<Tracked>()->check();

        // exchange (amap_swap): nullopt where the key was absent, then the value it
        // replaced, in both forms (a reference the raw form failed to take over
        // would leave a Tracked undestroyed: main counts them)
        std::unique_ptr<Tracked> third = make();
        Tracked *third_raw = third.get();
        CHECK(!map.exchange("s", std::move(third)));
        std::optional<amap::Value> replaced = map.exchange("s", make());
        CHECK(replaced && replaced->as<Tracked>() == third_raw);
        std::optional<amap::Value> swapped_in = map.get("s");
        CHECK(swapped_in && swapped_in->as<Tracked>() != third_raw);
        Tracked *raw = make().release();
        std::optional<amap::Value> replaced_raw = map.exchange("s", raw, amap::detail::delete_as<Tracked>);
        CHECK(replaced_raw && replaced_raw->as<Tracked>() == swapped_in->as<Tracked>());
        CHECK(!map.exchange("r", make().release(), amap::detail::delete_as<Tracked>));
        CHECK(map.get("s")->as<Tracked>() == raw);
        replaced->as<Tracked>()->check();
        replaced_raw->as<Tracked>()->check();
        CHECK(map.remove("s") && map.remove("r"));
    }
    drain(map); // every handle above is gone: all seven values destroyed here

    amap::TypedMap<Counted> typed(manual);
    auto [one, made] = typed.try_insert("a", Counted(1));
    auto [again, made_again] = typed.try_insert("a", Counted(2)); // the new T is deleted here
    CHECK(made && !made_again && again->get() == 1 && one->id == again->id);
    std::optional<amap::TypedValue<Counted>> gone = typed.take("a");
    CHECK(gone && gone->get()->get() == 1 && !typed.contains("a"));
    CHECK(!typed.exchange("a", Counted(4)));
    std::optional<amap::TypedValue<Counted>> four = typed.exchange("a", Counted(5));
    CHECK(four && four->get()->get() == 4 && typed.get("a")->get()->get() == 5);
    std::optional<amap::TypedValue<Counted>> five = typed.exchange("a", std::make_unique<Counted>(6));
    CHECK(five && five->get()->get() == 5 && typed.get("a")->get()->get() == 6);
    CHECK(typed.remove("a"));
    typed.emplace("b", 3);
    std::optional<amap::TypedValue<Counted>> b = typed.get("b");
    CHECK(b && typed.remove_if_same("b", *b) && !typed.remove_if_same("b", *b));

    // upsert: inserted when absent, then made from the current T; the old T stays
    // with its holder; an exception leaves the entry as it was and comes out.
    amap::TypedValue<Counted> first =
        typed.upsert("u", [](const Counted *now) { return Counted(now ? now->get() + 1 : 1); });
    CHECK(first->get() == 1);
    for (int i = 0; i < 4; i++) typed.upsert("u", [](const Counted *now) { return Counted(now->get() + 1); });
    amap::TypedValue<Counted> fifth = typed.upsert("u", [](const Counted *now) { return Counted(now->get() * 10); });
    CHECK(fifth->get() == 50 && first->get() == 1 && typed.get("u")->get()->get() == 50);
#if AMAP_HPP_EXCEPTIONS
    bool upsert_threw = false;
    try {
        typed.upsert("u", [](const Counted *) -> Counted { throw std::runtime_error("no"); });
    } catch (const std::runtime_error &) {
        upsert_threw = true;
    }
    CHECK(upsert_threw && typed.get("u")->get()->id == fifth->id);
#endif
    CHECK(typed.remove("u"));

    // Eviction: the entries the callback refuses go; an exception keeps the rest and
    // comes out of retain.
    for (int i = 0; i < 6; i++) typed.emplace(std::string(1, char('p' + i)), i);
    CHECK(typed.retain([](std::string_view, const Counted &c) { return c.get() % 2 == 0; }) == 3);
    CHECK(typed.size() == 3 && typed.contains("p") && !typed.contains("q"));

    // Sizing: room reserved is used without growing; a shrink gives back what the
    // eviction left, the entries and their holders untouched; impossible room
    // throws and changes nothing.
    CHECK(typed.capacity() > 0);
    typed.reserve(2000);
    size_t reserved = typed.capacity();
    CHECK(reserved >= 2000);
    for (int i = 0; i < 2000; i++) typed.emplace("z-" + std::to_string(i), i);
    CHECK(typed.capacity() == reserved);
    std::optional<amap::TypedValue<Counted>> r7 = typed.get("z-7");
    CHECK(typed.retain([](std::string_view key, const Counted &) { return key.substr(0, 2) != "z-"; }) == 2000);
    typed.shrink_to_fit();
    CHECK(typed.capacity() < reserved / 8 && typed.capacity() >= typed.size());
    CHECK(typed.size() == 3 && typed.contains("p") && r7 && r7->get()->get() == 7);
    CHECK(!typed.try_reserve(SIZE_MAX) && typed.try_reserve(10) && typed.size() == 3);
    {
        amap::Options sized_options;
        sized_options.capacity = 5000;
        amap::Map sized(sized_options);
        CHECK(sized.capacity() >= 5000 && sized.size() == 0);
#if AMAP_HPP_EXCEPTIONS
        // The constructor throws, and the map it made is freed (ASan: no leak).
        sized_options.capacity = SIZE_MAX;
        bool refused = false;
        try {
            amap::Map never(sized_options);
        } catch (const amap::Error &e) {
            refused = e.status() == AMAP_INVALID_ARGUMENT;
        }
        CHECK(refused);
#endif
    }
    {
        // Options::hasher reaches the map: SipHash serves the same calls; a value
        // naming no hasher is refused.
        amap::Options sip_options;
        sip_options.hasher = AMAP_HASHER_SIPHASH;
        amap::TypedMap<Counted> sip(sip_options);
        for (int i = 0; i < 100; i++) sip.emplace("k" + std::to_string(i), i);
        CHECK(sip.size() == 100 && sip.get("k42")->get()->get() == 42 && !sip.contains("k100"));
#if AMAP_HPP_EXCEPTIONS
        sip_options.hasher = 2;
        bool refused = false;
        try {
            amap::Map never(sip_options);
        } catch (const amap::Error &e) {
            refused = e.status() == AMAP_INVALID_ARGUMENT;
        }
        CHECK(refused);
#endif
    }
#if AMAP_HPP_EXCEPTIONS
    bool too_large = false;
    try {
        typed.reserve(SIZE_MAX);
    } catch (const amap::Error &e) {
        too_large = e.status() == AMAP_INVALID_ARGUMENT;
    }
    CHECK(too_large && typed.size() == 3);
#endif
#if AMAP_HPP_EXCEPTIONS
    int visited = 0;
    bool thrown = false;
    try {
        map.insert("x", make());
        map.insert("y", make());
        map.retain([&visited](std::string_view, const void *) -> bool {
            visited++;
            throw std::runtime_error("stop");
        });
    } catch (const std::runtime_error &) {
        thrown = true;
    }
    CHECK(thrown && visited == 1 && map.size() == 2); // nothing removed
#endif
    CHECK(map.retain([](std::string_view key, const void *) { return key != "x"; }) == 1);
    CHECK(map.size() == 1 && map.contains("y"));
    map.clear_async();
    drain(map);
}

int main() {
    std::setvbuf(stdout, nullptr, _IOLBF, 0); // progress lines as they come, even into a pipe
    for (size_t i = 0; i < kMaxValues; i++) destroyed_times[i].store(0);
    for (size_t i = 0; i < kMaxCounted; i++) counted_times[i].store(0);
    api();
    readers_keep_values_across_clears();
    batch_and_replace();
    read_section_iteration();
    own_reclaimer();
    releasing_threads();
    conditional_writes();
    std::printf("test_bindings: batches, replace, tickets, read-section iteration: ok\n");
    CHECK(destroyed.load() == created.load());
    for (size_t i = 0; i < created.load(); i++) CHECK(destroyed_times[i].load() == 1);
    typed_map();
    ticket_on_reclaimed();
    std::printf("test_bindings: typed map: ok\n");
    readers_during_reloads();
    {
        amap::Map driver;
        for (int i = 0; i < 10000 && counted_gone.load() < counted_made.load(); i++) {
            driver.reclaim();
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
    }
    CHECK(counted_gone.load() == counted_made.load());
    for (size_t i = 0; i < static_cast<size_t>(counted_made.load()); i++) CHECK(counted_times[i].load() == 1);
    std::printf("test_bindings: %ld counted objects, each destroyed once\n", counted_made.load());
    std::printf("test_bindings: ok\n");
    return 0;
}
