import CMPI
import Foundation
import Patchwork

/// The processes that train one model together: one process (`ProcessGroup.single`, which
/// communicates with no one), or the ranks of an Open MPI job (`mpirun -np N patchwork train …`).
///
/// MPI is initialised only when Open MPI launched this process (its launcher sets
/// `OMPI_COMM_WORLD_SIZE`), so a plain run never touches MPI. Every call is collective: all ranks
/// make the same calls in the same order, from the thread that initialised MPI (the trainer's).
/// A failing call throws an error naming the call, this rank and MPI's message.
public final class ProcessGroup: @unchecked Sendable {
    public let rank: Int
    public let size: Int
    let usesMPI: Bool

    /// One process on its own: every collective returns its input.
    public static let single = ProcessGroup(rank: 0, size: 1, usesMPI: false)

    private init(rank: Int, size: Int, usesMPI: Bool) {
        self.rank = rank; self.size = size; self.usesMPI = usesMPI
    }

    /// Whether Open MPI's launcher started this process.
    public static var launchedByMPI: Bool { ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_SIZE"] != nil }

    nonisolated(unsafe) private static var worldGroup: ProcessGroup?

    /// The group this process was launched in: MPI's world under `mpirun`, otherwise `single`.
    /// MPI is initialised on the first call (it can be initialised once per process).
    public static func world() throws -> ProcessGroup {
        if let worldGroup { return worldGroup }
        guard launchedByMPI else { return single }
        try check(pw_mpi_init(), "MPI_Init_thread", rank: nil)
        var rank: Int32 = 0, size: Int32 = 0
        try check(pw_mpi_rank(&rank), "MPI_Comm_rank", rank: nil)
        try check(pw_mpi_size(&size), "MPI_Comm_size", rank: nil)
        let group = ProcessGroup(rank: Int(rank), size: Int(size), usesMPI: true)
        worldGroup = group
        return group
    }

    public var isRoot: Bool { rank == 0 }

    /// Ends MPI after a run that every rank finished (nothing for a single process).
    public func finish() throws {
        guard usesMPI else { return }
        try Self.check(pw_mpi_finalize(), "MPI_Finalize", rank: rank)
    }

    /// Ends the whole job at once (every rank), for an error this rank cannot expect the others to share.
    public func abort(code: Int32) -> Never {
        if usesMPI { _ = pw_mpi_abort(code) }
        exit(code)
    }

    // MARK: Collectives

    /// MPI counts are Int32: longer buffers go in pieces.
    static let maxChunk = Int(Int32.max)

    /// Replaces `values` on every rank by their element-wise sum over the ranks (in place).
    public func allreduceSum(_ values: UnsafeMutableBufferPointer<Float>) throws {
        guard usesMPI, let base = values.baseAddress else { return }
        var offset = 0
        while offset < values.count {
            let n = min(Self.maxChunk, values.count - offset)
            try Self.check(pw_mpi_allreduce_sum_float(base + offset, Int32(n)), "MPI_Allreduce (\(n) floats)", rank: rank)
            offset += n
        }
    }

    /// Replaces `values` on every rank by their element-wise sum over the ranks.
    public func allreduceSum(_ values: inout [Double]) throws {
        guard usesMPI, !values.isEmpty else { return }
        let count = values.count
        try values.withUnsafeMutableBufferPointer { buffer in
            try Self.check(pw_mpi_allreduce_sum_double(buffer.baseAddress, Int32(count)), "MPI_Allreduce (\(count) doubles)", rank: rank)
        }
    }

    /// Copies `values` of rank `root` into `values` on every other rank.
    public func broadcast(_ values: UnsafeMutableBufferPointer<Float>, from root: Int = 0) throws {
        guard usesMPI, let base = values.baseAddress else { return }
        var offset = 0
        while offset < values.count {
            let n = min(Self.maxChunk, values.count - offset)
            try Self.check(pw_mpi_broadcast_float(base + offset, Int32(n), Int32(root)), "MPI_Bcast (\(n) floats)", rank: rank)
            offset += n
        }
    }

    /// Rank `root`'s bytes on every rank (the others' `bytes` are ignored).
    public func broadcast(bytes: [UInt8], from root: Int = 0) throws -> [UInt8] {
        guard usesMPI else { return bytes }
        var count = [Double(rank == root ? bytes.count : 0)]
        // The length first (a sum in which only the root's is non-zero), then the bytes.
        try allreduceSum(&count)
        var result = rank == root ? bytes : [UInt8](repeating: 0, count: Int(count[0]))
        var offset = 0
        while offset < result.count {
            let n = min(Self.maxChunk, result.count - offset)
            try result.withUnsafeMutableBytes { buffer in
                try Self.check(pw_mpi_broadcast_bytes(buffer.baseAddress! + offset, Int32(n), Int32(root)), "MPI_Bcast (\(n) bytes)", rank: rank)
            }
            offset += n
        }
        return result
    }

    /// Every rank's `value`, indexed by rank.
    public func allgather(_ value: UInt64) throws -> [UInt64] {
        guard usesMPI else { return [value] }
        var all = [UInt64](repeating: 0, count: size)
        try all.withUnsafeMutableBufferPointer { buffer in
            try Self.check(pw_mpi_allgather_uint64(value, buffer.baseAddress), "MPI_Allgather", rank: rank)
        }
        return all
    }

    public func barrier() throws {
        guard usesMPI else { return }
        try Self.check(pw_mpi_barrier(), "MPI_Barrier", rank: rank)
    }

    // MARK: Tensors

    /// Every rank's tensors take rank `root`'s values (same shapes on every rank, checked by the element count).
    public func broadcast(_ tensors: [Tensor], from root: Int = 0) throws -> [Tensor] {
        guard usesMPI else { return tensors }
        var flat = [Float]()
        flat.reserveCapacity(tensors.reduce(0) { $0 + $1.count })
        for t in tensors { flat += t.scalars }
        var counts = [Double](repeating: 0, count: size)
        counts[rank] = Double(flat.count)
        try allreduceSum(&counts)
        guard Set(counts).count == 1 else {
            throw TrainingError("ranks hold different numbers of values to broadcast (\(counts.map { Int($0) })): they are not running the same model")
        }
        try flat.withUnsafeMutableBufferPointer { try broadcast($0, from: root) }
        var offset = 0
        return tensors.map { t in
            defer { offset += t.count }
            return Tensor(Array(flat[offset..<(offset + t.count)]), shape: t.shape)
        }
    }

    // MARK: Errors

    static func check(_ code: Int32, _ call: String, rank: Int?) throws {
        guard code != pw_mpi_success() else { return }
        var buffer = [CChar](repeating: 0, count: Int(pw_mpi_max_error_string()) + 1)
        pw_mpi_error_string(code, &buffer, Int32(buffer.count))
        let message = String(cString: buffer)
        let who = rank.map { "rank \($0)" } ?? "this process"
        throw TrainingError("\(call) failed on \(who): \(message.isEmpty ? "MPI error \(code)" : message)")
    }
}
