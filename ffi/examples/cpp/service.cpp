// A service-shaped C++ program: workers look up tenant configs and keep the
// amap::TypedValue while they work; a reloader publishes a new version of all the
// configs every few hundred microseconds with replace(): one swap, so a worker
// never finds a config missing, and never sees a freed one. Each config is a
// TenantConfig deleted exactly once, after its last holder.
//
// Run: ffi/examples/cpp/run.sh
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "amap.hpp"

struct TenantConfig {
    std::string name;
    int quota;
};

int main() {
    amap::TypedMap<TenantConfig> configs;
    std::atomic<bool> stop{false};
    std::atomic<long> served{0}, reloads{0};

    auto load = [&](int version) {
        std::vector<std::pair<std::string, TenantConfig>> next; // built off to the side
        for (int t = 0; t < 8; t++) {
            std::string name = "tenant-" + std::to_string(t);
            next.emplace_back(name, TenantConfig{name, version});
        }
        configs.replace(std::move(next)); // one swap: the old version or the new
    };
    load(0);

    std::vector<std::thread> workers;
    for (int w = 0; w < 4; w++) {
        workers.emplace_back([&, w] {
            for (int i = 0; !stop.load(std::memory_order_relaxed); i++) {
                std::string tenant = "tenant-" + std::to_string((w + i) % 8);
                std::optional<amap::TypedValue<TenantConfig>> config = configs.get(tenant);
                if (!config) std::abort(); // a reload never leaves a tenant missing
                std::this_thread::sleep_for(std::chrono::microseconds(20)); // work; reloads happen
                if ((*config)->name != tenant) std::abort();
                served.fetch_add(1, std::memory_order_relaxed);
            }
        });
    }
    std::thread reloader([&] {
        for (int version = 1; !stop.load(std::memory_order_relaxed); version++) {
            load(version); // workers keep the TypedValues they hold
            reloads.fetch_add(1, std::memory_order_relaxed);
            std::this_thread::sleep_for(std::chrono::microseconds(300));
        }
    });

    std::this_thread::sleep_for(std::chrono::seconds(1));
    stop.store(true);
    for (auto &w : workers) w.join();
    reloader.join();
    long quotas = 0;
    {
        amap::TypedReadSection<TenantConfig> read(configs); // borrowed, no counting
        for (const auto &entry : read) quotas += entry.value.quota;
    }
    amap::Stats stats = configs.stats();
    bool torn_down = configs.clear_async().wait(std::chrono::seconds(10)); // O(1), then wait
    std::printf("served %ld lookups across %ld reloads (generation %llu, quotas %ld); last version torn down: %s\n",
                served.load(), reloads.load(), static_cast<unsigned long long>(stats.generation), quotas,
                torn_down ? "yes" : "no");
    return torn_down ? 0 : 1;
}
