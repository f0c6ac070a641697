import Foundation

/// Reference-counted Float32 memory shared by a tensor and all its views.
///
/// Memory comes from and returns to `BufferPool.shared`, so a computation that
/// repeats with the same shapes (a training step) stops calling malloc after
/// its first iteration.
public final class TensorStorage: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<Float>
    public let count: Int

    /// Uninitialised memory for `count` floats.
    public init(count: Int) {
        self.count = count
        self.pointer = BufferPool.shared.acquire(count)
    }

    /// Memory for `count` floats, all set to `value`.
    public convenience init(count: Int, repeating value: Float) {
        self.init(count: count)
        if value == 0 {
            pointer.update(repeating: 0, count: count)
        } else {
            Kernels.fill(pointer, count: count, value: value)
        }
    }

    deinit { BufferPool.shared.release(pointer, count: count) }
}

/// A cache of freed buffers keyed by exact element count.
///
/// Deep-learning workloads allocate the same handful of sizes over and over;
/// keeping freed buffers of each size and handing them out again removes
/// malloc/free (and the page faults of fresh large allocations) from the
/// steady state. The cache holds at most `capacityBytes`; beyond that,
/// buffers are freed.
public final class BufferPool: @unchecked Sendable {
    public static let shared = BufferPool()

    /// Upper bound on the bytes kept in the cache (default 2 GiB, or the
    /// value of PATCHWORK_POOL_MB).
    public var capacityBytes: Int
    private var free: [Int: [UnsafeMutablePointer<Float>]] = [:]
    private var cachedBytes = 0
    private var lock = pthread_mutex_t()

    /// Counters for tests and benchmarks.
    public private(set) var allocations = 0
    public private(set) var reuses = 0

    init() {
        pthread_mutex_init(&lock, nil)
        let mb = ProcessInfo.processInfo.environment["PATCHWORK_POOL_MB"].flatMap { Int($0) }.map { max(0, $0) } ?? 2048
        capacityBytes = mb << 20
    }

    func acquire(_ count: Int) -> UnsafeMutablePointer<Float> {
        let n = max(count, 1)
        pthread_mutex_lock(&lock)
        if var list = free[n], let p = list.popLast() {
            free[n] = list
            cachedBytes -= n * 4
            reuses += 1
            pthread_mutex_unlock(&lock)
            return p
        }
        allocations += 1
        pthread_mutex_unlock(&lock)
        // 64-byte alignment: whole cache lines and aligned AVX-512 loads.
        var raw: UnsafeMutableRawPointer?
        guard posix_memalign(&raw, 64, n * 4) == 0, let raw else {
            fatalError("Patchwork: out of memory allocating \(n * 4) bytes")
        }
        return raw.bindMemory(to: Float.self, capacity: n)
    }

    func release(_ p: UnsafeMutablePointer<Float>, count: Int) {
        let n = max(count, 1)
        pthread_mutex_lock(&lock)
        if cachedBytes + n * 4 <= capacityBytes {
            free[n, default: []].append(p)
            cachedBytes += n * 4
            pthread_mutex_unlock(&lock)
        } else {
            pthread_mutex_unlock(&lock)
            Foundation.free(p)
        }
    }

    /// Frees every cached buffer.
    public func drain() {
        pthread_mutex_lock(&lock)
        let lists = free
        free = [:]
        cachedBytes = 0
        pthread_mutex_unlock(&lock)
        for (_, list) in lists { for p in list { Foundation.free(p) } }
    }
}
