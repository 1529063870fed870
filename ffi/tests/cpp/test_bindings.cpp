// The C++ binding: its API, what it prevents at compile time, and the scenario
// that motivates the project: reader threads keep amap::Values across
// clear_async() called from another thread; every destructor runs exactly once.
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

    amap::Snapshot snap = map.snapshot();
    uint64_t retired = map.clear_async();
    CHECK(map.size() == 0 && snap.size() == 2);
    size_t seen = 0;
    for (const auto &entry : snap) {
        CHECK(entry.key == "a" || entry.key == "b");
        entry.value.as<Tracked>()->check();
        seen++;
    }
    CHECK(seen == 2);
    CHECK(!map.wait_reclaimed(retired, std::chrono::milliseconds(0))); // the snapshot holds it
    { amap::Snapshot gone = std::move(snap); }
    CHECK(map.reclaim() == 1);
    CHECK(map.wait_reclaimed(retired, std::chrono::milliseconds(0)));
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

} // namespace

int main() {
    for (size_t i = 0; i < kMaxValues; i++) destroyed_times[i].store(0);
    api();
    readers_keep_values_across_clears();
    CHECK(destroyed.load() == created.load());
    for (size_t i = 0; i < created.load(); i++) CHECK(destroyed_times[i].load() == 1);
    std::printf("test_bindings: ok\n");
    return 0;
}
