import Foundation
import Patchwork

/// Batches of a dataset, prepared ahead of the consumer on a background thread.
///
/// Reproducible: the sample order and every random draw of an epoch are a pure
/// function of (seed, epoch, index). The order of epoch e is a Fisher–Yates
/// shuffle from a generator seeded by (seed, e); sample i (its dataset index)
/// is transformed with a generator seeded by (seed, e, i); batch b's batch
/// transform uses a generator seeded by (seed, e, b). So an epoch is the same
/// bit for bit on every run, whatever the prefetch depth or thread timing, and
/// `batches(epoch:startingAt:)` resumes mid-epoch without replaying anything.
///
/// Sharded (`shard`, for data-parallel training over N processes), each rank serves its share of
/// the same epoch, as PyTorch's DistributedSampler: the epoch's order (the same permutation on
/// every rank, from the seed) is dealt out, position p to rank p mod N, and each rank cuts its
/// share into batches of `batchSize / N`. So rank r's batch b holds positions r, r+N, … of the
/// unsharded loader's batch b, and the N ranks' batches b together are exactly that batch.
/// With `dropLast` every rank serves the unsharded count of batches (the last incomplete global
/// batch is dropped, as in one process), so no rank ever needs padding. Without it (evaluation)
/// the last global batch is split as it is: ranks serve their own counts, which differ by at most
/// one batch, and every sample is served exactly once. (DistributedSampler would instead pad
/// the order by repeating its start to a multiple of N, so that all ranks take equal steps; its
/// repeated samples would be counted twice in evaluation.)
///
/// Errors from the dataset (a corrupt file) end the epoch: the iterator hands
/// back one `.failure` (naming the batch, the sample and, through the
/// dataset's message, the file) and then stops, as does the producer thread.
/// Dropping the iterator early also stops the producer.
public final class DataLoader: @unchecked Sendable {
    /// One rank's share of the data (see the type's comment).
    public struct Shard: Sendable, Equatable {
        public let rank: Int
        public let count: Int
        public init(rank: Int, count: Int) { self.rank = rank; self.count = count }
        /// The whole data set (one process).
        public static let whole = Shard(rank: 0, count: 1)
    }

    public let dataset: Dataset
    /// The global batch: the ranks' batches together (each rank serves `batchSize / shard.count`).
    public let batchSize: Int
    public let shard: Shard
    public let shuffle: Bool
    public let dropLast: Bool
    public let transform: ImageTransform?
    public let batchTransform: BatchTransform?
    public let seed: UInt64
    /// Batches prepared ahead of the consumer; 0 prepares each batch on the consumer's thread.
    public let prefetch: Int

    public init(dataset: Dataset, batchSize: Int, shuffle: Bool = true, dropLast: Bool = false,
                transform: ImageTransform? = nil, batchTransform: BatchTransform? = nil,
                seed: UInt64 = 0, prefetch: Int = 2, shard: Shard = .whole) {
        guard batchSize > 0, prefetch >= 0 else {
            fail("DataLoader", "batchSize \(batchSize) must be positive and prefetch \(prefetch) ≥ 0")
        }
        guard shard.count >= 1, shard.rank >= 0, shard.rank < shard.count, batchSize % shard.count == 0 else {
            fail("DataLoader", "shard \(shard.rank) of \(shard.count) with batch size \(batchSize): the rank must be in 0..<count and the batch must divide by the count")
        }
        self.dataset = dataset; self.batchSize = batchSize; self.shard = shard; self.shuffle = shuffle; self.dropLast = dropLast
        self.transform = transform; self.batchTransform = batchTransform; self.seed = seed; self.prefetch = prefetch
    }

    /// Samples in one of this rank's batches (the whole batch for one process).
    public var shardBatchSize: Int { batchSize / shard.count }

    /// Batches per epoch (this rank's: with `dropLast` the same on every rank).
    public var count: Int {
        let n = dataset.count
        if dropLast { return n / batchSize }
        let share = (n - shard.rank + shard.count - 1) / shard.count
        return (share + shardBatchSize - 1) / shardBatchSize
    }

    // MARK: Seeds

    /// SplitMix64's finaliser.
    @inline(__always)
    static func mix64(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A seed derived from the loader's seed, a purpose tag and indices.
    func derivedSeed(_ tag: UInt64, _ values: Int...) -> UInt64 {
        var h = DataLoader.mix64(seed ^ 0x5041_5443_4857_4B00 ^ tag)
        for v in values { h = DataLoader.mix64(h ^ UInt64(bitPattern: Int64(v))) }
        return h
    }

    /// The generator for sample `index` (dataset index) in `epoch`.
    public func sampleGenerator(epoch: Int, index: Int) -> Generator { Generator(seed: derivedSeed(2, epoch, index)) }

    /// The generator for batch `batch` in `epoch` (batch transforms).
    public func batchGenerator(epoch: Int, batch: Int) -> Generator { Generator(seed: derivedSeed(3, epoch, batch)) }

    // MARK: Order

    /// The dataset indices of `epoch` in the order this rank serves them (its share of the epoch's order).
    public func order(epoch: Int) -> [Int] {
        let n = dataset.count
        let all = shuffle ? Generator(seed: derivedSeed(1, epoch)).permutation(n) : Array(0..<n)
        guard shard.count > 1 else { return all }
        return stride(from: shard.rank, to: n, by: shard.count).map { all[$0] }
    }

    /// The dataset indices of batch `batch` of an epoch whose (this rank's) order is `order`.
    func indices(batch: Int, order: [Int]) -> ArraySlice<Int> {
        let lo = batch * shardBatchSize
        return order[lo..<Swift.min(lo + shardBatchSize, order.count)]
    }

    // MARK: Making batches

    /// Batch `batch` of `epoch`, prepared on the calling thread (the same batch the iterator serves).
    public func batch(epoch: Int, index batch: Int) throws -> Batch {
        guard batch >= 0 && batch < count else { fail("DataLoader.batch", "batch \(batch) is outside 0..<\(count)") }
        return try makeBatch(epoch: epoch, batch: batch, order: order(epoch: epoch))
    }

    func makeBatch(epoch: Int, batch: Int, order: [Int]) throws -> Batch {
        let picked = indices(batch: batch, order: order)
        var images: Tensor?
        var labels: [Int] = []
        labels.reserveCapacity(picked.count)
        var itemShape: [Int] = []
        for (k, i) in picked.enumerated() {
            var image: Tensor
            let label: Int
            do {
                (image, label) = try dataset.sample(i)
            } catch {
                throw DataError("batch \(batch) of epoch \(epoch), sample \(i): \(error)")
            }
            if let transform { image = transform(image, generator: sampleGenerator(epoch: epoch, index: i)) }
            image = image.detached().contiguous()
            if images == nil {
                itemShape = image.shape
                let shape = [picked.count] + itemShape
                // Every element is written below before the batch is used.
                images = Tensor(storage: TensorStorage(count: shape.reduce(1, *)), shape: shape,
                                strides: Tensor.contiguousStrides(shape))
            }
            guard image.shape == itemShape else {
                throw DataError("batch \(batch) of epoch \(epoch), sample \(i): image of shape \(image.shape) after transforms, "
                                + "but the batch's first image has shape \(itemShape); add a Resize/crop so all images match")
            }
            let n = image.count
            (images!.storage.pointer + k * n).update(from: image.storage.pointer + image.offset, count: n)
            withExtendedLifetime(image) {}
            labels.append(label)
        }
        var result = Batch(images: images!, labels: labels)
        if let batchTransform {
            result = batchTransform(result, classes: dataset.classNames.count, generator: batchGenerator(epoch: epoch, batch: batch))
        }
        return result
    }

    // MARK: Iteration

    /// The batches of `epoch` from batch `startingAt` on (skipped batches cost nothing).
    public func batches(epoch: Int, startingAt start: Int = 0) -> Batches {
        guard start >= 0 else { fail("DataLoader.batches", "startingAt \(start) must be ≥ 0") }
        return Batches(loader: self, epoch: epoch, start: Swift.min(start, count))
    }

    /// One epoch's batches; each `makeIterator()` starts its own producer.
    public struct Batches: Sequence {
        public let loader: DataLoader
        public let epoch: Int
        public let start: Int
        public func makeIterator() -> BatchIterator { BatchIterator(loader: loader, epoch: epoch, start: start) }
    }

    /// Number of producer threads running now (for tests and diagnostics).
    public static var runningProducers: Int {
        producerLock.lock(); defer { producerLock.unlock() }
        return producerCount
    }
    static let producerLock = NSLock()
    nonisolated(unsafe) static var producerCount = 0
}

/// The bounded queue between a producer thread and its iterator.
final class PrefetchQueue: @unchecked Sendable {
    let condition = NSCondition()
    var items: [Result<Batch, Error>] = []
    var cancelled = false
    var finished = false
}

/// Serves one epoch's batches in order; `.failure` at most once, then nil.
///
/// Dropping the iterator before the end stops its producer thread (it finishes
/// at most the batch it is working on).
public final class BatchIterator: IteratorProtocol {
    private let loader: DataLoader
    private let epoch: Int
    private var cursor: Int
    private var order: [Int] = []
    private var queue: PrefetchQueue?
    private var done = false

    init(loader: DataLoader, epoch: Int, start: Int) {
        self.loader = loader
        self.epoch = epoch
        self.cursor = start
        if loader.prefetch == 0 || start >= loader.count {
            order = start >= loader.count ? [] : loader.order(epoch: epoch)
        } else {
            let queue = PrefetchQueue()
            self.queue = queue
            DataLoader.producerLock.lock(); DataLoader.producerCount += 1; DataLoader.producerLock.unlock()
            let thread = Thread { BatchIterator.produce(loader: loader, epoch: epoch, start: start, queue: queue) }
            thread.name = "patchwork-loader"
            thread.start()
        }
    }

    deinit {
        if let queue {
            queue.condition.lock()
            queue.cancelled = true
            queue.condition.broadcast()
            queue.condition.unlock()
        }
    }

    private static func produce(loader: DataLoader, epoch: Int, start: Int, queue: PrefetchQueue) {
        defer {
            queue.condition.lock()
            queue.finished = true
            queue.condition.broadcast()
            queue.condition.unlock()
            DataLoader.producerLock.lock(); DataLoader.producerCount -= 1; DataLoader.producerLock.unlock()
        }
        let order = loader.order(epoch: epoch)
        for b in start..<loader.count {
            queue.condition.lock()
            while queue.items.count >= loader.prefetch && !queue.cancelled { queue.condition.wait() }
            let stop = queue.cancelled
            queue.condition.unlock()
            if stop { return }
            let result = Result { try loader.makeBatch(epoch: epoch, batch: b, order: order) }
            queue.condition.lock()
            queue.items.append(result)
            queue.condition.broadcast()
            queue.condition.unlock()
            if case .failure = result { return }
        }
    }

    public func next() -> Result<Batch, Error>? {
        if done { return nil }
        let result: Result<Batch, Error>
        if let queue {
            queue.condition.lock()
            while queue.items.isEmpty && !queue.finished { queue.condition.wait() }
            if queue.items.isEmpty {
                queue.condition.unlock()
                done = true
                return nil
            }
            result = queue.items.removeFirst()
            queue.condition.broadcast()
            queue.condition.unlock()
        } else {
            guard cursor < loader.count else { done = true; return nil }
            result = Result { try loader.makeBatch(epoch: epoch, batch: cursor, order: order) }
        }
        cursor += 1
        if case .failure = result { done = true }
        return result
    }

    /// The next batch, nil at the end of the epoch; throws the dataset's error.
    public func nextBatch() throws -> Batch? {
        try next()?.get()
    }

    /// Index (within the epoch) of the batch the next call returns.
    public var position: Int { cursor }
}
