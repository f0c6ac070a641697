import Patchwork

/// What one residual sub-layer did in its last forward pass: the residual stream just before
/// the sub-layer and just after its branch was added back (x and x + f(x), or for a ResNet
/// block its input and its output). The analyses compare the two (Park & Kim 2022 plot the
/// feature maps after every MSA and MLP sub-layer of a ViT and after every ResNet block).
public struct ResidualBranchRecord {
    public var input: Tensor
    public var output: Tensor
}

/// Keeps one residual branch's last `ResidualBranchRecord`. Off by default: a block that is not
/// recorded pays one Bool test per forward pass. A plain object, not a Module: no parameters,
/// not part of the checkpoint.
public final class ResidualBranchRecorder {
    /// What the branch computes: "attention", "mlp", "conv", "depthwise-conv".
    public let kind: String
    public var isOn = false
    public private(set) var record: ResidualBranchRecord?

    public init(kind: String) { self.kind = kind }

    /// When on, keeps the stream before and after the branch, detached from the tape so that a
    /// record never holds a graph alive. The closures run only when on.
    public func record(input: @autoclosure () -> Tensor, output: @autoclosure () -> Tensor) {
        guard isOn else { return }
        record = ResidualBranchRecord(input: input().detached(), output: output().detached())
    }
}

/// A block with residual branches that can keep the stream around each of them: a ViT block
/// (attention or token-mixer branch, MLP branch), a ResNet block (its convolution branch).
public protocol ResidualBranchRecording: AnyObject {
    /// The block's branches in forward order, each by a name appended to the block's key
    /// (the branch's own child key, "attn", "mlp", …), or "" when the block is one branch.
    var residualBranches: [(name: String, recorder: ResidualBranchRecorder)] { get }
}

extension Module {
    /// Every residual branch below this module, in forward order, by dotted key: the block's
    /// key, then ".name" for a named branch ("blocks.0.attn", "blocks.0.mlp", "layer1.0").
    public func residualBranchLayers() -> [(key: String, recorder: ResidualBranchRecorder)] {
        namedModules().flatMap { key, module -> [(key: String, recorder: ResidualBranchRecorder)] in
            guard let block = module as? ResidualBranchRecording else { return [] }
            return block.residualBranches.map { branch in
                let name = [key, branch.name].filter { !$0.isEmpty }.joined(separator: ".")
                return (name, branch.recorder)
            }
        }
    }

    /// Turns residual-branch recording on or off in every block below this module.
    public func recordResidualBranches(_ on: Bool = true) {
        for (_, recorder) in residualBranchLayers() { recorder.isOn = on }
    }
}
