// A service-shaped C++ program: workers look up tenant configs and keep the
// amap::Value while they work; a reloader replaces the whole table every few
// hundred microseconds with clear_async(). No worker ever sees a freed config.
//
// Run: ffi/examples/cpp/run.sh
#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "amap.hpp"

struct TenantConfig {
    std::string name;
    int quota;
};

int main() {
    amap::Map configs;
    std::atomic<bool> stop{false};
    std::atomic<long> served{0}, reloads{0};

    auto load = [&](int version) {
        for (int t = 0; t < 8; t++) {
            std::string name = "tenant-" + std::to_string(t);
            configs.insert(name, std::make_unique<TenantConfig>(TenantConfig{name, version}));
        }
    };
    load(0);

    std::vector<std::thread> workers;
    for (int w = 0; w < 4; w++) {
        workers.emplace_back([&, w] {
            for (int i = 0; !stop.load(std::memory_order_relaxed); i++) {
                std::string tenant = "tenant-" + std::to_string((w + i) % 8);
                if (std::optional<amap::Value> config = configs.get(tenant)) {
                    std::this_thread::sleep_for(std::chrono::microseconds(20)); // work; reloads happen
                    if (config->as<TenantConfig>()->name != tenant) std::abort();
                    served.fetch_add(1, std::memory_order_relaxed);
                }
            }
        });
    }
    std::thread reloader([&] {
        for (int version = 1; !stop.load(std::memory_order_relaxed); version++) {
            configs.clear_async(); // O(1): workers keep the Values they hold
            load(version);
            reloads.fetch_add(1, std::memory_order_relaxed);
            std::this_thread::sleep_for(std::chrono::microseconds(300));
        }
    });

    std::this_thread::sleep_for(std::chrono::seconds(1));
    stop.store(true);
    for (auto &w : workers) w.join();
    reloader.join();
    amap::Stats stats = configs.stats();
    std::printf("served %ld lookups across %ld reloads (generation %llu)\n", served.load(), reloads.load(),
                static_cast<unsigned long long>(stats.generation));
    return 0;
}
