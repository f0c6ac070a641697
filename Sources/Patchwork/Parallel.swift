import CDNNL

/// Parallel loops on the OpenMP thread team that oneDNN also uses.
///
/// Sharing one team matters on a small machine: after a parallel region,
/// OpenMP threads spin before sleeping, so a second thread pool would compete
/// with them for the same cores. Inside a parallel region, nested regions
/// (including oneDNN's GEMM) run on the calling thread only: that is how
/// batched small GEMMs get split across cores with single-threaded calls.
public enum Parallel {
    /// Number of threads a parallel loop uses.
    public static var threadCount: Int { Int(omp_get_max_threads()) }

    /// Work below this many element-operations runs on the calling thread.
    public static let minimumWorkPerThread = 32_768

    /// Runs `body(range)` over `0..<count` split into contiguous chunks, one per
    /// thread, when `count * costPerItem` is large enough to pay for waking the
    /// team; otherwise runs it inline.
    @inline(__always)
    public static func forChunks(_ count: Int, costPerItem: Int = 1, _ body: (Range<Int>) -> Void) {
        let threads = threadCount
        if count <= 1 || threads <= 1 || count &* costPerItem < minimumWorkPerThread * 2
            || omp_in_parallel() != 0 {
            if count > 0 { body(0..<count) }
            return
        }
        let pieces = min(threads, count)
        withoutActuallyEscaping(body) { escapable in
            var job = Job(count: count, pieces: pieces, body: escapable)
            withUnsafeMutablePointer(to: &job) { ptr in
                GOMP_parallel({ raw in
                    let job = raw!.assumingMemoryBound(to: Job.self).pointee
                    let t = Int(omp_get_thread_num())
                    let n = Int(omp_get_num_threads())
                    // Each thread takes pieces t, t+n, ... (normally exactly one).
                    var piece = t
                    while piece < job.pieces {
                        let lo = job.count * piece / job.pieces
                        let hi = job.count * (piece + 1) / job.pieces
                        if lo < hi { job.body(lo..<hi) }
                        piece += n
                    }
                }, ptr, UInt32(pieces), 0)
            }
        }
    }

    /// Runs `body(i)` for every i in `0..<count`, in parallel when worthwhile.
    @inline(__always)
    public static func forEach(_ count: Int, costPerItem: Int = 1, _ body: (Int) -> Void) {
        forChunks(count, costPerItem: costPerItem) { r in for i in r { body(i) } }
    }

    private struct Job {
        let count: Int
        let pieces: Int
        let body: (Range<Int>) -> Void
    }
}
