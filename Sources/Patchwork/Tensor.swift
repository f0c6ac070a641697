/// An n-dimensional array of Float32 with shape and strides over shared storage.
///
/// `Tensor` is a value type. Views (reshape of contiguous data, permute,
/// slice, expand) share storage with their source; every op writes a fresh
/// contiguous result, so a tensor's contents never change after creation.
///
/// Layout convention: channels-last. Feature maps are `[B, H, W, C]`, token
/// sequences `[B, N, C]`, so map → tokens is a reshape, not a copy.
///
/// A tensor that takes part in differentiation carries a `GradNode`: leaves
/// get one from `requiringGrad()`, op results get one when any input has one
/// and gradient recording is on (see `Autograd.swift`).
public struct Tensor: @unchecked Sendable {
    public let storage: TensorStorage
    public let shape: [Int]
    public let strides: [Int]
    public let offset: Int
    public internal(set) var node: GradNode?

    public init(storage: TensorStorage, shape: [Int], strides: [Int], offset: Int = 0) {
        self.storage = storage
        self.shape = shape
        self.strides = strides
        self.offset = offset
        self.node = nil
    }

    /// A fresh contiguous tensor with uninitialised contents (kernels fill it).
    init(uninitializedShape shape: [Int]) {
        let count = shape.reduce(1, *)
        self.init(storage: TensorStorage(count: count), shape: shape, strides: Tensor.contiguousStrides(shape))
    }

    /// A tensor holding `scalars` (row-major) with the given shape.
    public init(_ scalars: [Float], shape: [Int]) {
        let count = shape.reduce(1, *)
        guard scalars.count == count else {
            fail("Tensor.init", "\(scalars.count) values do not fill shape \(shape) (\(count) elements)")
        }
        if let bad = shape.firstIndex(where: { $0 < 0 }) {
            fail("Tensor.init", "negative size \(shape[bad]) at dimension \(bad) of shape \(shape)")
        }
        self.init(uninitializedShape: shape)
        scalars.withUnsafeBufferPointer { src in
            if count > 0 { storage.pointer.update(from: src.baseAddress!, count: count) }
        }
    }

    /// A 1-D tensor of `scalars`.
    public init(_ scalars: [Float]) { self.init(scalars, shape: [scalars.count]) }

    /// A rank-0 tensor holding one value.
    public init(_ value: Float) { self.init([value], shape: []) }

    // MARK: Geometry

    public var rank: Int { shape.count }
    public var count: Int { shape.reduce(1, *) }

    public static func contiguousStrides(_ shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        var s = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) {
            strides[i] = s
            s *= Swift.max(shape[i], 1)
        }
        return strides
    }

    /// True when the elements are laid out row-major without gaps from `offset`.
    public var isContiguous: Bool {
        var expected = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) where shape[i] != 1 {
            if strides[i] != expected { return false }
            expected *= shape[i]
        }
        return true
    }

    /// Pointer to the first element (valid for contiguous tensors).
    @inline(__always) var base: UnsafeMutablePointer<Float> { storage.pointer + offset }

    /// The values in row-major order.
    public var scalars: [Float] {
        let c = contiguous(recordingGrad: false)
        return Array(UnsafeBufferPointer(start: c.base, count: c.count))
    }

    /// The single value of a one-element tensor.
    public func item() -> Float {
        guard count == 1 else { fail("Tensor.item", "tensor of shape \(shape) has \(count) elements, not 1") }
        return storage.pointer[offset]
    }

    /// The value at a multi-index.
    public subscript(index: Int...) -> Float {
        guard index.count == rank else { fail("Tensor.subscript", "\(index.count) indices for shape \(shape)") }
        var o = offset
        for (d, i) in index.enumerated() {
            guard i >= 0 && i < shape[d] else { fail("Tensor.subscript", "index \(i) out of range for dimension \(d) of shape \(shape)") }
            o += i * strides[d]
        }
        return storage.pointer[o]
    }

    /// This tensor's value cut from the graph (no gradient flows through it).
    public func detached() -> Tensor {
        var t = self
        t.node = nil
        return t
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let values = scalars
        let shown = values.prefix(8).map { String(format: "%.4g", $0) }.joined(separator: ", ")
        return "Tensor(shape: \(shape), [\(shown)\(values.count > 8 ? ", ..." : "")])"
    }
}

import Foundation

/// Stops with a message naming the op and what was wrong with its arguments.
///
/// Shape, axis and argument mistakes are programming errors in the model code,
/// so Patchwork stops rather than returning a wrong answer; the message says
/// which op, which shapes and which argument.
public func fail(_ op: String, _ message: String) -> Never {
    let text = "Patchwork error in \(op): \(message)\n"
    FileHandle.standardError.write(text.data(using: .utf8)!)
    fatalError("\(op): \(message)")
}

/// Stops through `fail` when `condition` is false: the checks a caller can trigger (a config, a
/// shape from a file, an argument). Not `precondition`: in -O builds a failed precondition stops
/// with a bare "illegal instruction" and drops its message, and -Ounchecked removes it altogether.
@inline(__always)
public func require(_ condition: Bool, _ op: @autoclosure () -> String, _ message: @autoclosure () -> String) {
    if !condition { fail(op(), message()) }
}

/// Normalises a possibly negative axis, stopping with a clear message when out of range.
@inline(__always)
func normalizeAxis(_ axis: Int, rank: Int, op: String, shape: [Int]) -> Int {
    let a = axis < 0 ? axis + rank : axis
    guard a >= 0 && a < rank else {
        fail(op, "axis \(axis) is out of range for a tensor of shape \(shape) (rank \(rank))")
    }
    return a
}
