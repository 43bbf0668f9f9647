// A mutex in a MAP_SHARED mapping, shared by the master and every worker: process-shared and
// robust, so a process that dies holding it (a plugin crash) does not wedge the others.
// Whatever is guarded must stay consistent at each store, since the next owner carries on
// from wherever the dead one stopped.
#pragma once

#include <errno.h>
#include <pthread.h>

namespace torii {

inline void robust_mutex_init(pthread_mutex_t *m) {
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(m, &attr);
    pthread_mutexattr_destroy(&attr);
}

inline void robust_mutex_lock(pthread_mutex_t *m) {
    if (pthread_mutex_lock(m) == EOWNERDEAD) pthread_mutex_consistent(m);
}

class RobustLock {
public:
    explicit RobustLock(pthread_mutex_t *m) : m_(m) { robust_mutex_lock(m_); }
    ~RobustLock() { pthread_mutex_unlock(m_); }
    RobustLock(const RobustLock &) = delete;
    RobustLock &operator=(const RobustLock &) = delete;

private:
    pthread_mutex_t *m_;
};

}  // namespace torii
