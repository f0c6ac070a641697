import Foundation
import Patchwork

/// Averages a step's gradients over the ranks of a data-parallel run, after the backward pass
/// (as DistributedDataParallel, without its overlap with the backward pass: our autograd hands
/// back all gradients at once, see docs/DISTRIBUTED.md).
///
/// The gradients are packed, in the order of their sorted keys (the same on every rank), into
/// buckets of at most `bucketBytes`; each bucket is summed over the ranks in place with one
/// MPI allreduce and divided by the number of ranks. The mean of the ranks' mean losses over
/// equal shares is the mean loss over the global batch, so the averaged gradient is the one
/// process's gradient on the whole batch (up to the order of the float sums).
final class GradientAverager {
    let group: ProcessGroup
    /// Floats per bucket (at least one).
    let bucketElements: Int
    private var bucket: [Float] = []
    /// Seconds spent in allreduce (the communication's share of the steps).
    private(set) var allreduceSeconds = 0.0

    init(group: ProcessGroup, bucketBytes: Int) {
        self.group = group
        bucketElements = max(1, bucketBytes / MemoryLayout<Float>.stride)
    }

    /// Replaces every gradient by its mean over the ranks.
    func average(_ gradients: inout [String: Tensor]) throws {
        guard group.size > 1 else { return }
        let keys = gradients.keys.sorted()
        var start = 0
        while start < keys.count {
            // A bucket: the next gradients while they fit (a gradient larger than a bucket goes alone).
            var end = start, elements = 0
            while end < keys.count, end == start || elements + gradients[keys[end]]!.count <= bucketElements {
                elements += gradients[keys[end]]!.count
                end += 1
            }
            try reduce(keys[start..<end], elements: elements, in: &gradients)
            start = end
        }
    }

    private func reduce(_ keys: ArraySlice<String>, elements: Int, in gradients: inout [String: Tensor]) throws {
        if bucket.count < elements { bucket = [Float](repeating: 0, count: elements) }
        let scale = 1 / Float(group.size)
        try bucket.withUnsafeMutableBufferPointer { buffer in
            var offset = 0
            for key in keys {
                let g = gradients[key]!.contiguous()
                (buffer.baseAddress! + offset).update(from: g.storage.pointer + g.offset, count: g.count)
                withExtendedLifetime(g) {}
                offset += g.count
            }
            let t0 = Date()
            try group.allreduceSum(UnsafeMutableBufferPointer(rebasing: buffer[0..<elements]))
            allreduceSeconds += Date().timeIntervalSince(t0)
            offset = 0
            for key in keys {
                let shape = gradients[key]!.shape, n = gradients[key]!.count
                let mean = Tensor(storage: TensorStorage(count: n), shape: shape, strides: Tensor.contiguousStrides(shape))
                for i in 0..<n { mean.storage.pointer[i] = buffer[offset + i] * scale }
                gradients[key] = mean
                offset += n
            }
        }
    }
}
