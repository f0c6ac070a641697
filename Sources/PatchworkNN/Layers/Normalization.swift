import Patchwork

/// Layer norm over the last dimension (torch.nn.LayerNorm(dim), and timm's
/// LayerNorm2d on channels-last maps).
public final class LayerNorm: Module {
    @OptionalParameter(key: "weight") public var weight: Tensor?
    @OptionalParameter(key: "bias") public var bias: Tensor?
    public let eps: Float

    public init(_ dim: Int, eps: Float = 1e-5, affine: Bool = true, bias: Bool = true) {
        _weight.wrappedValue = affine ? Tensor.ones([dim]) : nil
        _bias.wrappedValue = affine && bias ? Tensor.zeros([dim]) : nil
        self.eps = eps
        super.init()
    }

    public override func callAsFunction(_ x: Tensor) -> Tensor {
        layerNorm(x, weight: weight, bias: bias, eps: eps)
    }
}

/// Batch norm over every axis but the last (channels): torch's BatchNorm1d
/// and BatchNorm2d in channels-last layout. Training mode normalises with the
/// batch statistics and updates the running ones; evaluation mode uses the
/// running statistics.
public final class BatchNorm: Module {
    @OptionalParameter(key: "weight") public var weight: Tensor?
    @OptionalParameter(key: "bias") public var bias: Tensor?
    @Buffer(key: "running_mean") public var runningMean: Tensor
    @Buffer(key: "running_var") public var runningVar: Tensor
    @Buffer(key: "num_batches_tracked", checkpointDType: .I64) public var numBatchesTracked: Tensor
    public let eps: Float
    public let momentum: Float

    public init(_ channels: Int, eps: Float = 1e-5, momentum: Float = 0.1, affine: Bool = true) {
        _weight.wrappedValue = affine ? Tensor.ones([channels]) : nil
        _bias.wrappedValue = affine ? Tensor.zeros([channels]) : nil
        _runningMean.wrappedValue = Tensor.zeros([channels])
        _runningVar.wrappedValue = Tensor.ones([channels])
        _numBatchesTracked.wrappedValue = Tensor(0)
        self.eps = eps
        self.momentum = momentum
        super.init()
    }

    public override func callAsFunction(_ x: Tensor) -> Tensor { callAsFunction(x, adding: nil, relu: false) }

    /// The norm, then + residual where given, then ReLU where asked: in evaluation one pass over
    /// the activations (`batchNorm(_:…adding:relu:)`), in training the three ops in turn.
    public func callAsFunction(_ x: Tensor, adding residual: Tensor?, relu: Bool) -> Tensor {
        guard training else {
            return batchNorm(x, mean: runningMean, variance: runningVar, weight: weight, bias: bias, eps: eps,
                             adding: residual, relu: relu)
        }
        let (y, mean, unbiasedVariance) = batchNormTraining(x, weight: weight, bias: bias, eps: eps)
        withoutGrad {
            runningMean = (runningMean * (1 - momentum) + mean.detached() * momentum)
            runningVar = (runningVar * (1 - momentum) + unbiasedVariance.detached() * momentum)
            numBatchesTracked = numBatchesTracked + 1
        }
        let sum = residual.map { y + $0 } ?? y
        return relu ? sum.relu() : sum
    }
}

/// torch.nn.BatchNorm2d (channels-last).
public typealias BatchNorm2d = BatchNorm

/// Group norm over channel groups and all positions (torch.nn.GroupNorm) on [B, ..., C].
public final class GroupNorm: Module {
    @OptionalParameter(key: "weight") public var weight: Tensor?
    @OptionalParameter(key: "bias") public var bias: Tensor?
    public let groups: Int
    public let eps: Float

    public init(groups: Int, channels: Int, eps: Float = 1e-5, affine: Bool = true) {
        require(channels % groups == 0, "GroupNorm", "\(groups) groups do not divide \(channels) channels")
        _weight.wrappedValue = affine ? Tensor.ones([channels]) : nil
        _bias.wrappedValue = affine ? Tensor.zeros([channels]) : nil
        self.groups = groups
        self.eps = eps
        super.init()
    }

    public override func callAsFunction(_ x: Tensor) -> Tensor {
        groupNorm(x, groups: groups, weight: weight, bias: bias, eps: eps)
    }
}
