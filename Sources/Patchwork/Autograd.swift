/// Reverse-mode automatic differentiation.
///
/// Every differentiable op result carries a `GradNode` that remembers the
/// op's inputs (their nodes) and a pullback: a closure mapping the gradient of
/// the result to gradients of the inputs. Pullbacks are written with ordinary
/// Tensor ops, so when the backward pass itself is recorded
/// (`createGraph: true`), gradients are differentiable again: that is how the
/// Hessian analyses get exact Hessian-vector products.
public final class GradNode: @unchecked Sendable {
    /// The op that made this node ("matmul", "conv2d", ...) or "leaf".
    public let op: String
    let inputs: [GradNode?]
    let pullback: ((Tensor, Tensor) -> [Tensor?])?
    /// The result of the op, kept only for pullbacks that need it
    /// (exp, sigmoid, softmax, ...), so they stay differentiable.
    let savedOutput: (storage: TensorStorage, shape: [Int], strides: [Int], offset: Int)?

    /// Leaves only: the accumulated gradient after `backward()`.
    public var grad: Tensor?

    /// A piece of a split (`Tensor.split`): its gradient goes to `whole`, which assembles the
    /// gradients of all its pieces into one gradient of the source.
    let piece: (whole: GradNode, index: Int)?
    /// A split's node: builds the source's gradient from the pieces' gradients (nil for a piece
    /// no gradient reached), so the source gets one gradient written once, not one zero-filled,
    /// source-sized gradient per piece added together.
    let assemble: (([Tensor?]) -> Tensor)?
    let pieceCount: Int

    public var isLeaf: Bool { pullback == nil && op == "leaf" }

    init(leaf: ()) {
        op = "leaf"; inputs = []; pullback = nil; savedOutput = nil
        piece = nil; assemble = nil; pieceCount = 0
    }

    init(op: String, inputs: [GradNode?], savedOutput: Tensor?, pullback: @escaping (Tensor, Tensor) -> [Tensor?]) {
        self.op = op
        self.inputs = inputs
        self.pullback = pullback
        self.savedOutput = savedOutput.map { ($0.storage, $0.shape, $0.strides, $0.offset) }
        piece = nil; assemble = nil; pieceCount = 0
    }

    /// The node of a split of `source` into `pieces` pieces; its gradient is `assemble`d from theirs.
    init(split source: GradNode, pieces: Int, assemble: @escaping ([Tensor?]) -> Tensor) {
        op = "split"; inputs = [source]; savedOutput = nil
        pullback = { g, _ in [g] }
        piece = nil; self.assemble = assemble; pieceCount = pieces
    }

    /// The node of piece `index` of the split `whole`.
    init(pieceOf whole: GradNode, index: Int) {
        op = "split_piece"; inputs = [whole]; pullback = nil; savedOutput = nil
        piece = (whole, index); assemble = nil; pieceCount = 0
    }
}

/// Whether ops record the graph for differentiation.
public enum GradMode {
    nonisolated(unsafe) static var enabled = true
    public static var isEnabled: Bool { enabled }
}

/// Runs `body` without recording any graph (inference, optimizer updates).
@discardableResult
public func withoutGrad<T>(_ body: () throws -> T) rethrows -> T {
    let previous = GradMode.enabled
    GradMode.enabled = false
    defer { GradMode.enabled = previous }
    return try body()
}

/// Runs `body` with graph recording on, even inside `withoutGrad`.
@discardableResult
public func withGrad<T>(_ body: () throws -> T) rethrows -> T {
    let previous = GradMode.enabled
    GradMode.enabled = true
    defer { GradMode.enabled = previous }
    return try body()
}

extension Tensor {
    /// This value as a new leaf of the graph: gradients with respect to it can
    /// be asked for, and `backward()` accumulates into `grad`.
    public func requiringGrad() -> Tensor {
        var t = self
        t.node = GradNode(leaf: ())
        return t
    }

    public var requiresGrad: Bool { node != nil }

    /// The gradient accumulated into this leaf by `backward()`.
    public var grad: Tensor? { node?.grad }

    /// Clears the accumulated gradient of this leaf.
    public func zeroGrad() { node?.grad = nil }

    /// Attaches `pullback` to `output` when any input is being differentiated.
    @inline(__always)
    static func record(_ op: String, _ output: Tensor, _ inputs: [Tensor],
                       pullback: @escaping (_ grad: Tensor) -> [Tensor?]) -> Tensor {
        guard GradMode.enabled, inputs.contains(where: { $0.node != nil }) else { return output }
        var out = output
        out.node = GradNode(op: op, inputs: inputs.map { $0.node }, savedOutput: nil) { g, _ in pullback(g) }
        return out
    }

    /// Like `record`, for pullbacks that use the op's result (with its node,
    /// so that a second derivative sees the dependence on the inputs).
    @inline(__always)
    static func recordUsingOutput(_ op: String, _ output: Tensor, _ inputs: [Tensor],
                                  pullback: @escaping (_ grad: Tensor, _ output: Tensor) -> [Tensor?]) -> Tensor {
        guard GradMode.enabled, inputs.contains(where: { $0.node != nil }) else { return output }
        var out = output
        out.node = GradNode(op: op, inputs: inputs.map { $0.node }, savedOutput: output, pullback: pullback)
        return out
    }

    /// Back-propagates from this tensor and adds the gradients into every leaf's `grad`.
    ///
    /// - Parameters:
    ///   - seed: the gradient of the final objective with respect to this tensor
    ///     (default: ones, which needs a one-element tensor or means "sum").
    ///   - createGraph: record the backward pass, so the accumulated gradients
    ///     can be differentiated again.
    public func backward(seed: Tensor? = nil, createGraph: Bool = false) {
        guard let root = node else {
            fail("backward", "tensor of shape \(shape) does not depend on any tensor that requires grad")
        }
        let reached = Autograd.propagate(root: root, rootShape: shape, seed: seed, createGraph: createGraph)
        for (leaf, g) in reached.values {
            leaf.grad = leaf.grad.map { $0 + g } ?? g
        }
    }
}

enum Autograd {
    /// Runs the backward pass from `root` with gradient `seed` (default ones).
    ///
    /// Propagation stops at leaves and at the nodes in `stopAt`; the result
    /// maps each of those nodes that a gradient reached to that gradient.
    static func propagate(root: GradNode, rootShape: [Int], seed: Tensor?, createGraph: Bool,
                          stopAt: Set<ObjectIdentifier> = []) -> [ObjectIdentifier: (GradNode, Tensor)] {
        Precision.forBackward {
            propagateInCurrentPrecision(root: root, rootShape: rootShape, seed: seed, createGraph: createGraph, stopAt: stopAt)
        }
    }

    private static func propagateInCurrentPrecision(root: GradNode, rootShape: [Int], seed: Tensor?, createGraph: Bool,
                                                    stopAt: Set<ObjectIdentifier>) -> [ObjectIdentifier: (GradNode, Tensor)] {
        let seedGrad = seed ?? Tensor.ones(rootShape)
        guard seedGrad.shape == rootShape else {
            fail("backward", "seed of shape \(seedGrad.shape) does not match output shape \(rootShape)")
        }
        // Topological order by iterative depth-first search.
        var order: [GradNode] = []
        var visited = Set<ObjectIdentifier>([ObjectIdentifier(root)])
        var stack: [(GradNode, Int)] = [(root, 0)]
        while let (node, next) = stack.popLast() {
            let inputs = stopAt.contains(ObjectIdentifier(node)) ? [] : node.inputs
            if next < inputs.count {
                stack.append((node, next + 1))
                if let child = inputs[next], !visited.contains(ObjectIdentifier(child)) {
                    visited.insert(ObjectIdentifier(child))
                    stack.append((child, 0))
                }
            } else {
                order.append(node)
            }
        }
        let previous = GradMode.enabled
        GradMode.enabled = createGraph
        defer { GradMode.enabled = previous }

        var grads: [ObjectIdentifier: Tensor] = [ObjectIdentifier(root): seedGrad]
        // The gradients of split pieces, by split node, until that node (after all its pieces in
        // this order, since they depend on it) assembles them.
        var pieceGrads: [ObjectIdentifier: [Tensor?]] = [:]
        var reached: [ObjectIdentifier: (GradNode, Tensor)] = [:]
        for node in order.reversed() {
            let key = ObjectIdentifier(node)
            if let piece = node.piece, !stopAt.contains(key) {
                if let g = grads.removeValue(forKey: key) {
                    pieceGrads[ObjectIdentifier(piece.whole), default: Array(repeating: nil, count: piece.whole.pieceCount)][piece.index] = g
                }
                continue
            }
            var gradient = grads.removeValue(forKey: key)
            if gradient == nil, let assemble = node.assemble, let pieces = pieceGrads.removeValue(forKey: key) {
                gradient = assemble(pieces)
            }
            guard let g = gradient else { continue }
            guard let pullback = node.pullback, !stopAt.contains(key) else {
                reached[key] = (node, g)
                continue
            }
            var output = g  // unused by pullbacks recorded without their output
            if let s = node.savedOutput {
                output = Tensor(storage: s.storage, shape: s.shape, strides: s.strides, offset: s.offset)
                output.node = node
            }
            let inputGrads = pullback(g, output)
            require(inputGrads.count == node.inputs.count, "backward",
                    "pullback of \(node.op) returned \(inputGrads.count) gradients for \(node.inputs.count) inputs")
            for (input, ig) in zip(node.inputs, inputGrads) {
                guard let input, let ig else { continue }
                let k = ObjectIdentifier(input)
                if let existing = grads[k] { grads[k] = existing + ig } else { grads[k] = ig }
            }
        }
        return reached
    }
}

/// Gradients of the scalar `f(inputs)` with respect to each input.
///
/// Inputs are made leaves of a fresh graph, so the gradients are with respect
/// to exactly these values. With `createGraph: true` the returned gradients
/// carry the graph of their own computation (for second derivatives, when
/// the inputs passed in are themselves differentiable).
public func valueAndGradient(at inputs: [Tensor], createGraph: Bool = false, reusingLeaves: Bool = false,
                             of f: ([Tensor]) -> Tensor) -> (value: Tensor, gradients: [Tensor]) {
    let leaves = inputs.map { x -> Tensor in
        // With `reusingLeaves`, inputs that already are leaves are used as they are
        // (parameters that the function reads from elsewhere, e.g. a module).
        if reusingLeaves, let node = x.node, node.isLeaf { return x }
        // A distinct node that keeps x's own graph reachable, so second
        // derivatives through an outer graph still work.
        if createGraph, x.node != nil { return x.identityForGradient() }
        return x.requiringGrad()
    }
    let value = withGrad { f(leaves) }
    guard value.count == 1 else {
        fail("valueAndGradient", "the function must return a single value, got shape \(value.shape)")
    }
    var gradients: [Tensor] = []
    if let root = value.node {
        let targets = Set(leaves.map { ObjectIdentifier($0.node!) })
        let reached = Autograd.propagate(root: root, rootShape: value.shape, seed: nil, createGraph: createGraph, stopAt: targets)
        gradients = leaves.map { leaf in reached[ObjectIdentifier(leaf.node!)]?.1 ?? Tensor.zeros(leaf.shape) }
    } else {
        gradients = leaves.map { Tensor.zeros($0.shape) }
    }
    return (createGraph ? value : value.detached(), gradients)
}

/// Gradient of the scalar `f(x)` with respect to `x`.
public func gradient(at x: Tensor, createGraph: Bool = false, of f: (Tensor) -> Tensor) -> Tensor {
    valueAndGradient(at: [x], createGraph: createGraph) { f($0[0]) }.gradients[0]
}

extension Tensor {
    /// An identity op whose result is a distinct graph node (used to take
    /// gradients with respect to an intermediate value).
    func identityForGradient() -> Tensor {
        var out = Tensor(storage: storage, shape: shape, strides: strides, offset: offset)
        out.node = GradNode(op: "identity", inputs: [node], savedOutput: nil) { g, _ in [g] }
        return out
    }
}
