#include "core/process/master_status.h"

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <new>

namespace torii {

static constexpr size_t kMaxWorkers = 1024;

struct DrainingEntry {
    uint32_t generation;
    int32_t pid;
    int32_t slot;
    uint32_t closing;
};

struct ReloadEntry {
    int64_t at;
    uint32_t generation;
    uint32_t ok;
    uint32_t error_len;
    char error[MasterStatus::kReloadErrorMax];
};

struct MasterStatus::Page {
    std::atomic<uint32_t> seq;  // odd while the master writes
    uint32_t generation;
    int64_t config_loaded;
    uint32_t worker_count;
    uint32_t draining;
    uint64_t reloads;
    uint64_t reload_failures;
    int32_t master;
    int32_t workers[kMaxWorkers];
    uint32_t draining_count;
    DrainingEntry draining_workers[kMaxWorkers];
    uint32_t reload_count;  // entries of reload_history in use, oldest first
    ReloadEntry reload_history[MasterStatus::kReloadHistory];
    WorkerSlot slots[MasterStatus::kSlots];
};

MasterStatus *MasterStatus::create() {
    void *mem =
        mmap(nullptr, sizeof(Page), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) return nullptr;
    auto *s = new MasterStatus();
    s->page_ = new (mem) Page();
    return s;
}

void MasterStatus::destroy(MasterStatus *s) {
    if (!s) return;
    munmap(s->page_, sizeof(Page));
    delete s;
}

WorkerSlot *MasterStatus::worker_slot(int i) {
    return i >= 0 && i < kSlots ? &page_->slots[i] : nullptr;
}

void MasterStatus::publish(const StatusSnapshot &s) {
    Page &p = *page_;
    p.seq.fetch_add(1, std::memory_order_acq_rel);
    p.generation = s.generation;
    p.config_loaded = s.config_loaded;
    p.worker_count =
        static_cast<uint32_t>(s.workers.size() < kMaxWorkers ? s.workers.size() : kMaxWorkers);
    for (uint32_t i = 0; i < p.worker_count; ++i)
        p.workers[i] = s.workers[i];
    p.draining = s.draining;
    p.draining_count = static_cast<uint32_t>(std::min(s.draining_workers.size(), kMaxWorkers));
    for (uint32_t i = 0; i < p.draining_count; ++i) {
        const DrainingWorker &d = s.draining_workers[i];
        p.draining_workers[i] = {d.generation, d.pid, d.slot, d.closing ? 1u : 0u};
    }
    p.reloads = s.reloads;
    p.reload_failures = s.reload_failures;
    p.master = s.master;
    p.reload_count = static_cast<uint32_t>(std::min(s.reload_history.size(), kReloadHistory));
    for (uint32_t i = 0; i < p.reload_count; ++i) {
        const ReloadEvent &e = s.reload_history[i];
        ReloadEntry &r = p.reload_history[i];
        r.at = e.at;
        r.generation = e.generation;
        r.ok = e.ok;
        r.error_len = static_cast<uint32_t>(std::min(e.error.size(), kReloadErrorMax));
        std::copy_n(e.error.data(), r.error_len, r.error);
    }
    p.seq.fetch_add(1, std::memory_order_acq_rel);
}

StatusSnapshot MasterStatus::read() const {
    const Page &p = *page_;
    StatusSnapshot out;
    for (int tries = 0; tries < 1000; ++tries) {
        uint32_t before = p.seq.load(std::memory_order_acquire);
        if (before & 1) continue;
        out.generation = p.generation;
        out.config_loaded = p.config_loaded;
        uint32_t n = p.worker_count < kMaxWorkers ? p.worker_count : kMaxWorkers;
        out.workers.assign(p.workers, p.workers + n);
        out.draining = p.draining;
        uint32_t d = p.draining_count < kMaxWorkers ? p.draining_count : kMaxWorkers;
        out.draining_workers.resize(d);
        for (uint32_t i = 0; i < d; ++i) {
            const DrainingEntry &e = p.draining_workers[i];
            out.draining_workers[i] = {e.generation, e.pid, e.slot, e.closing != 0};
        }
        out.reloads = p.reloads;
        out.reload_failures = p.reload_failures;
        out.master = p.master;
        uint32_t r = std::min<uint32_t>(p.reload_count, kReloadHistory);
        out.reload_history.resize(r);
        for (uint32_t i = 0; i < r; ++i) {
            const ReloadEntry &e = p.reload_history[i];
            out.reload_history[i] = {
                e.at, e.generation, e.ok != 0,
                std::string(e.error, std::min<size_t>(e.error_len, kReloadErrorMax))};
        }
        if (p.seq.load(std::memory_order_acquire) == before) break;
    }
    return out;
}

}  // namespace torii
