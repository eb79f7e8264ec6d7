#if canImport(Glibc)
import Glibc
#else
import Foundation
#endif

extension Parallel {
    /// Runs `body` while a second worker runs the tasks `body` hands to the lane, in the order handed;
    /// returns when both are done.
    ///
    /// For a chain of steps each too short to split (a parallel region's helper joins about 40 µs late,
    /// as long as a step of a one-crop convolutional layer takes), with work beside the chain that
    /// nothing in it waits for: a backward pass's weight-gradient terms. The two threads meet twice,
    /// not once per step. Products inside either run in the blocks they would have at this worker
    /// count, one after the other (the pool is taken), so every result has the same bits as without the
    /// lane. With one worker, or `beside` false, or the pool busy, each task runs when handed.
    public static func withLane<R>(beside: Bool = true, _ body: (Lane) -> R) -> R {
        guard beside, workers > 1 else { return body(Lane(inline: true)) }
        let lane = Lane(inline: false)
        var result: R?
        withoutActuallyEscaping(body) { body in
            nonisolated(unsafe) let body = body
            nonisolated(unsafe) var out: R?
            forEachWorker(2) { part in
                if part == 0 {
                    out = body(lane)
                    lane.finish()
                } else {
                    lane.drain()
                }
            }
            result = out
        }
        return result!
    }
}

/// The queue of `Parallel.withLane`: tasks run in the order handed, each once. The tasks share state with
/// the caller that Swift cannot check: a task may touch only what the caller leaves alone until
/// `withLane` returns (values captured by copy, accumulators that only tasks write).
public final class Lane: @unchecked Sendable {
    private let inline: Bool
    private var tasks: [(() -> Void)?] = []
    private var next = 0
    private var finished = false
    private let lock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let ready = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    init(inline: Bool) {
        self.inline = inline
        pthread_mutex_init(lock, nil)
        pthread_cond_init(ready, nil)
    }

    deinit {
        pthread_cond_destroy(ready)
        pthread_mutex_destroy(lock)
        lock.deallocate()
        ready.deallocate()
    }

    /// Hands `task` to the lane (inline: runs it now).
    public func run(_ task: @escaping () -> Void) {
        if inline { return task() }
        pthread_mutex_lock(lock)
        tasks.append(task)
        pthread_cond_signal(ready)
        pthread_mutex_unlock(lock)
    }

    fileprivate func finish() {
        pthread_mutex_lock(lock)
        finished = true
        pthread_cond_signal(ready)
        pthread_mutex_unlock(lock)
    }

    /// Runs the tasks as they come until `finish` and none is left.
    fileprivate func drain() {
        pthread_mutex_lock(lock)
        while true {
            if next < tasks.count {
                let task = tasks[next]!
                tasks[next] = nil          // its captures go once it has run
                next += 1
                pthread_mutex_unlock(lock)
                task()
                pthread_mutex_lock(lock)
            } else if finished {
                break
            } else {
                pthread_cond_wait(ready, lock)
            }
        }
        pthread_mutex_unlock(lock)
    }
}
