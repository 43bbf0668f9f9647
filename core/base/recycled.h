// Recycled<T>: class-level operator new/delete that keep freed objects of T for reuse, so a
// per-request object (a proxy session, an upstream stream) costs no malloc/free once the
// worker is warm. The free list is bounded (a burst does not pin memory for ever) and
// given back at exit (LeakSanitizer checks single-process runs). Single-threaded: one
// worker, one loop.
#pragma once

#include <cstddef>
#include <new>
#include <vector>

namespace torii {

template <typename T, size_t kMax = 256>
struct Recycled {
    static void *operator new(size_t size) {
        auto &free = free_list();
        if (size == sizeof(T) && !free.empty()) {
            void *p = free.back();
            free.pop_back();
            return p;
        }
        return ::operator new(size);
    }
    static void operator delete(void *p, size_t size) {
        auto &free = free_list();
        if (size == sizeof(T) && free.size() < kMax) {
            free.push_back(p);
            return;
        }
        ::operator delete(p);
    }

private:
    struct FreeList : std::vector<void *> {
        FreeList() { reserve(kMax); }
        ~FreeList() {
            for (void *p : *this)
                ::operator delete(p);
        }
    };
    static inline FreeList list_;
    static FreeList &free_list() { return list_; }
};

}  // namespace torii
